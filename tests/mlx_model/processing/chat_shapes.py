"""Conversation shapes the Gemma 4 chat format must render exactly as Google's canonical template.

Each entry: the keyword arguments of one render (messages, tools, enable_thinking,
preserve_thinking, add_generation_prompt). `EXPECTED` in `canonical_renderings.py` holds what
the canonical template renders for each, pinned.
"""

from __future__ import annotations

from typing import Any

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "description": "Forecast days", "nullable": True},
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "What to report",
                },
                "location": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat", "lon"],
                },
            },
            "required": ["city"],
        },
    },
}
CALCULATOR_TOOL = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
TOOLS = [WEATHER_TOOL, CALCULATOR_TOOL]


def _call(call_id: str, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


_ASK = {"role": "user", "content": "What is the weather in Paris? And what is 6*7?"}
_CALLS = {
    "role": "assistant",
    "reasoning_content": "I need the weather tool and the calculator.",
    "tool_calls": [
        _call("call_0", "get_weather", {"city": "Paris", "units": "celsius"}),
        _call("call_1", "calculator", {"expression": "6*7"}),
    ],
}
_RESULTS = [
    {"role": "tool", "tool_call_id": "call_0", "content": '{"temperature": 21, "sky": "sunny"}'},
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
]


def _openai_tool_round() -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are a helpful assistant."}, _ASK, _CALLS, *_RESULTS]


CONVERSATIONS: dict[str, dict[str, Any]] = {
    "system_as_text": {
        "messages": [
            {"role": "system", "content": "  You are terse.  "},
            {"role": "user", "content": "Hello"},
        ],
    },
    "system_as_parts": {
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Be brief."},
                    {"type": "text", "text": " Answer in French. "},
                ],
            },
            {"role": "user", "content": "Hello"},
        ],
    },
    "developer_role_as_system": {
        "messages": [
            {"role": "developer", "content": "Use metric units."},
            {"role": "user", "content": "How far is it?"},
        ],
    },
    "thinking_off": {"messages": [{"role": "user", "content": "Hi"}]},
    "thinking_on": {"messages": [{"role": "user", "content": "Hi"}], "enable_thinking": True},
    "no_generation_prompt": {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "add_generation_prompt": False,
    },
    "history_with_reasoning_thinking_off": {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "add them"},
            {"role": "user", "content": "And 3+3?"},
        ],
    },
    "history_with_reasoning_thinking_on": {
        "messages": [
            {"role": "system", "content": "Think first."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning_content": "add them"},
            {"role": "user", "content": "And 3+3?"},
        ],
        "enable_thinking": True,
    },
    "reasoning_after_the_last_user_message": {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4", "reasoning": "add them"},
        ],
        "enable_thinking": True,
        "add_generation_prompt": False,
    },
    "thought_markup_in_model_content_is_stripped": {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {
                "role": "assistant",
                "content": "<|channel>thought\nadd them<channel|>The answer is 4.",
            },
            {"role": "user", "content": "Thanks"},
        ],
    },
    "consecutive_model_messages_continue_one_turn": {
        "messages": [
            {"role": "user", "content": "Tell me two things."},
            {"role": "assistant", "content": "First."},
            {"role": "assistant", "content": "Second."},
            {"role": "user", "content": "Thanks"},
        ],
    },
    "tools_declared_with_a_system_prompt": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
        ],
        "tools": TOOLS,
    },
    "tools_declared_with_thinking_on": {
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": TOOLS,
        "enable_thinking": True,
    },
    "openai_tool_messages_thinking_off": {"messages": _openai_tool_round(), "tools": TOOLS},
    "openai_tool_messages_thinking_on": {
        "messages": _openai_tool_round(),
        "tools": TOOLS,
        "enable_thinking": True,
    },
    "inline_tool_responses": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "tool_calls": [_call("call_0", "get_weather", {"city": "Paris"})],
                "tool_responses": [
                    {"name": "get_weather", "response": {"temperature": 21, "sky": "sunny"}}
                ],
            },
        ],
        "tools": TOOLS,
    },
    "inline_tool_responses_thinking_on": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "reasoning_content": "Check the weather.",
                "tool_calls": [_call("call_0", "get_weather", {"city": "Paris"})],
                "tool_responses": [{"name": "get_weather", "response": "21 C and sunny"}],
            },
        ],
        "tools": TOOLS,
        "enable_thinking": True,
    },
    "tool_result_then_user_turn": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "tool_calls": [_call("call_0", "calculator", {"expression": "6*7"})],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "42"},
            {"role": "user", "content": "Now divide it by 2."},
        ],
        "tools": TOOLS,
    },
    "tool_result_then_final_answer": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "tool_calls": [_call("call_0", "calculator", {"expression": "6*7"})],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "42"},
            {"role": "assistant", "content": "6*7 is 42."},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": TOOLS,
    },
    "answer_text_and_tool_calls_in_one_message": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [_call("call_0", "calculator", {"expression": "6*7"})],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "42"},
        ],
        "tools": TOOLS,
    },
    "tool_call_waiting_for_its_result": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "tool_calls": [_call("call_0", "calculator", {"expression": "6*7"})],
            },
        ],
        "tools": TOOLS,
    },
    "none_in_tool_arguments_and_results": {
        "messages": [
            _ASK,
            {
                "role": "assistant",
                "tool_calls": [
                    _call(
                        "call_0",
                        "get_weather",
                        {"city": "Paris", "days": None, "fields": ["wind", None], "ok": True},
                    ),
                    _call("call_1", "calculator", None),
                ],
                "tool_responses": [
                    {"name": "get_weather", "response": {"rain": None, "temp": 21.5}},
                    {"name": "calculator", "response": None},
                ],
            },
        ],
        "tools": TOOLS,
    },
    "tool_result_as_content_parts_with_an_image": {
        "messages": [
            {"role": "user", "content": "Take a screenshot and describe it."},
            {"role": "assistant", "tool_calls": [_call("call_0", "screenshot", {})]},
            {
                "role": "tool",
                "tool_call_id": "call_0",
                "content": [
                    {"type": "text", "text": "captured "},
                    {"type": "text", "text": "screen.png"},
                    {"type": "image"},
                ],
            },
        ],
    },
    "tool_result_without_a_matching_call_id": {
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "tool_calls": [_call("call_0", "calculator", {"x": 1})]},
            {"role": "tool", "tool_call_id": "other", "name": "lookup", "content": "done"},
        ],
    },
    "media_in_user_content": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                    {"type": "video"},
                    {"type": "text", "text": " Describe all of it. "},
                    {"type": "audio"},
                    {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                ],
            }
        ],
    },
    "preserve_thinking_off": {
        "messages": [
            _ASK,
            {**_CALLS, "tool_calls": _CALLS["tool_calls"][:1]},
            _RESULTS[0],
            {"role": "assistant", "content": "It is sunny.", "reasoning_content": "Done."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": TOOLS,
        "enable_thinking": True,
    },
    "preserve_thinking_on": {
        "messages": [
            _ASK,
            {**_CALLS, "tool_calls": _CALLS["tool_calls"][:1]},
            _RESULTS[0],
            {"role": "assistant", "content": "It is sunny.", "reasoning_content": "Done."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": TOOLS,
        "enable_thinking": True,
        "preserve_thinking": True,
    },
}
