"""OpenAI's Responses API (`POST /v1/responses`): input items in, a `response` object out,
whole or as its stream of typed events.

The request's `input` (a string, or message / `function_call` / `function_call_output`
items) and `instructions` become chat messages and go through the one conversion
(`app.messages`), so media and tool results are checked as chat completions' are.
Function tools, `tool_choice`, `parallel_tool_calls`, `text.format` (JSON mode, JSON
Schema), `reasoning.effort` (thinking), `max_output_tokens`, `truncation: "auto"` (drop
the oldest turns) and the sampling fields map to the same options. Nothing is stored:
`previous_response_id`, `conversation`, `background` and item references are refused,
so a client sends the whole conversation each time (`store` is accepted and means
nothing here).

The answer's output items are, in order, a `reasoning` item with the thought (as
`reasoning_text` content), a `message` with the text, and one `function_call` per tool
call. Streamed, they come as `response.created`, `response.in_progress`, the items' added
/ delta / done events and `response.completed` (or `response.incomplete` when
`max_output_tokens` ended it), each with its `sequence_number`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from app.engines.contract import (
    Finished,
    GenerationStats,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
)
from app.server.chat_request import (
    ChatRequest,
    build_options,
    cache_key_of,
    effort_thinks,
    function_tool,
    parse_messages,
    refuse_unsupported,
    require_bool,
    require_model,
    require_object,
    sampling_values,
    schema_format,
    stop_list,
    tool_choice_of,
    unknown_fields,
)
from app.server.config import ServerConfig
from app.server.errors import bad_request

_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "text", "reasoning", "max_output_tokens", "temperature", "top_p", "top_k", "min_p",
        "repetition_penalty", "repeat_penalty", "seed", "stop", "stream", "stream_options",
        "store", "include", "truncation", "prompt_cache_key", "previous_response_id",
        "conversation", "background", "prompt", "top_logprobs", "max_tool_calls",
        "chat_template_kwargs", "enable_thinking", "n", "best_of", "logprobs",
    }
)  # fmt: skip


def parse_request(body: Any, config: ServerConfig) -> ChatRequest:
    """A `ChatRequest` from a `/v1/responses` body (400 naming the field at fault)."""
    body = require_object(body)
    model = require_model(body)
    refuse_unsupported(body)
    for name, why in (
        ("previous_response_id", "this server stores no responses; send the whole "
         "conversation in `input`"),
        ("conversation", "this server keeps no conversations; send them in `input`"),
        ("prompt", "stored prompts are not available here"),
    ):  # fmt: skip
        if body.get(name) is not None:
            raise bad_request(f"`{name}` is not supported: {why}.", param=name)
    if body.get("background"):
        raise bad_request("`background` responses are not supported.", param="background")
    stream = require_bool(body, "stream")

    tools = _tools(body.get("tools"))
    values = sampling_values(body)
    max_tokens_param = None
    if body.get("max_output_tokens") is not None:
        values["max_tokens"] = body["max_output_tokens"]
        max_tokens_param = "max_output_tokens"
    if body.get("stop") is not None:
        values["stop"] = stop_list(body["stop"])
    values["enable_thinking"] = _thinking(body)
    values["response_format"] = _text_format(body.get("text"))
    values["tool_choice"] = tool_choice_of(body.get("tool_choice"), tools)
    if body.get("parallel_tool_calls") is not None:
        values["parallel_tool_calls"] = body["parallel_tool_calls"]
    truncation = body.get("truncation") or "disabled"
    if truncation not in ("auto", "disabled"):
        raise bad_request("`truncation` must be auto or disabled.", param="truncation")
    values["context_policy"] = "drop_oldest" if truncation == "auto" else "error"
    options = build_options(values, {"max_tokens": "max_output_tokens"})

    messages = input_messages(body.get("input"), body.get("instructions"))
    echo = {
        "instructions": body.get("instructions"),
        "tools": [_response_tool(t) for t in tools or ()],
        "tool_choice": _choice_json(body.get("tool_choice")),
        "parallel_tool_calls": options.parallel_tool_calls,
        "text": {"format": body.get("text", {}).get("format") or {"type": "text"}}
        if isinstance(body.get("text"), dict)
        else {"format": {"type": "text"}},
        "reasoning": body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "truncation": truncation,
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
        "store": False,
    }
    return ChatRequest(
        model=model,
        messages=parse_messages(messages, config),
        stream=stream,
        tools=tools,
        options=options,
        conversation_id=cache_key_of(body),
        max_tokens_param=max_tokens_param,
        ignored=unknown_fields(body, _FIELDS),
        extra={"echo": echo},
    )


def writer(chat: ChatRequest, model: str) -> ResponseWriter:
    return ResponseWriter(model, chat.extra.get("echo", {}))


# --- the request -----------------------------------------------------------------------------


def _thinking(body: dict[str, Any]) -> Any:
    thinking: Any = False
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise bad_request("`reasoning` must be an object.", param="reasoning")
        if reasoning.get("effort") is not None:
            thinking = effort_thinks(reasoning["effort"], "reasoning.effort")
    kwargs = body.get("chat_template_kwargs") or {}
    if isinstance(kwargs, dict) and "enable_thinking" in kwargs:
        thinking = kwargs["enable_thinking"]
    if "enable_thinking" in body:
        thinking = body["enable_thinking"]
    return thinking


def _text_format(text: Any) -> Any:
    """`text.format` as a `ResponseFormat` (None for plain text)."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad_request("`text` must be an object.", param="text")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise bad_request("`text.format` must be an object.", param="text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        from app.options import ResponseFormat

        return ResponseFormat.json_object()
    if kind == "json_schema":
        return schema_format(fmt, "text.format")
    raise bad_request(
        f"`text.format.type` must be text, json_object or json_schema; got {kind!r}.",
        param="text.format",
    )


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    """Responses function tools (`{"type": "function", "name", "parameters", ...}`) as chat
    tools; built-in tools (web search, file search, ...) are not available here."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_request("`tools` must be a list.", param="tools")
    checked = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise bad_request(
                f"`{where}`: only function tools are available here, not {kind!r}.", param=where
            )
        checked.append(function_tool(tool, where))
    names = [t["function"]["name"] for t in checked]
    if len(set(names)) != len(names):
        raise bad_request("Tool names must be unique.", param="tools")
    return checked or None


def _response_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    return {
        "type": "function",
        "name": fn["name"],
        "description": fn["description"] or None,
        "parameters": fn["parameters"],
        "strict": False,
    }


def _choice_json(choice: Any) -> Any:
    if choice is None:
        return "auto"
    if isinstance(choice, dict) and choice.get("type") == "function":
        inner = choice.get("function")
        name = inner.get("name") if isinstance(inner, dict) else choice.get("name")
        return {"type": "function", "name": name}
    return choice


def input_messages(items: Any, instructions: Any = None) -> list[dict[str, Any]]:
    """`instructions` and `input` as OpenAI chat messages (checked by the chat conversion)."""
    messages: list[dict[str, Any]] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad_request("`instructions` must be a string.", param="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list) or not items:
        raise bad_request("`input` must be a string or a non-empty list of items.", param="input")
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"`{where}` must be an object.", param=where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id") or "",
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":  # calls join the turn's message
                last = {"role": "assistant", "content": ""}
                messages.append(last)
            last.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = "".join(
                    p.get("text", "") for p in output if isinstance(p, dict)
                )  # the text parts of a structured output
            if not isinstance(output, str):
                raise bad_request(f"`{where}.output` must be a string.", param=where)
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": output}
            )
        elif kind == "reasoning":
            continue  # earlier thoughts are not part of the next prompt (the template drops them)
        else:
            raise bad_request(
                f"`{where}.type` {kind!r} is not available here (messages, function_call and "
                "function_call_output items are).",
                param=where,
            )
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(
            f"`{where}.role` must be user, assistant, system or developer.", param=where
        )
    content = item.get("content")
    if isinstance(content, str):
        parts: Any = content
    elif isinstance(content, list):
        parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    else:
        raise bad_request(f"`{where}.content` must be a string or a list.", param=where)
    return {"role": role, "content": parts}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text")}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal", "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad_request(
                f"`{where}.image_url` is required (a data URL; file ids are not stored here).",
                param=where,
            )
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    raise bad_request(
        f"`{where}` must be an input_text, input_image or input_audio part; got {kind!r}.",
        param=where,
    )


# --- the answer ------------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(stats: GenerationStats | None) -> dict[str, Any]:
    """Token counts; every prefilled token is written to the prompt cache here."""
    cached = stats.cached_tokens if stats else 0
    prefilled = stats.prefilled_tokens if stats else 0
    output = stats.generated_tokens if stats else 0
    return {
        "input_tokens": prefilled + cached,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": prefilled},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prefilled + cached + output,
    }


class ResponseWriter:
    """`Writer` for `/v1/responses`: the `response` object, or its typed SSE events."""

    media_type = "text/event-stream"

    def __init__(self, model: str, echo: dict[str, Any]) -> None:
        self.model = model
        self.echo = echo
        self.id = _new_id("resp")
        self.created = int(time.time())
        self.output: list[dict[str, Any]] = []  # finished items, in order
        self.open: dict[str, Any] | None = None  # the item being streamed
        self.stats: GenerationStats | None = None
        self.sequence = 0

    # -- collected ----------------------------------------------------------------------------

    def add(self, event: Any) -> None:
        self._consume(event)

    def body(self) -> dict[str, Any]:
        self._close()
        return self.response("incomplete" if self._cut() else "completed")

    def response(self, status: str) -> dict[str, Any]:
        done = status in ("completed", "incomplete")
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "completed_at": int(time.time()) if done else None,
            "status": status,
            "model": self.model,
            "output": list(self.output) if done else [],
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "previous_response_id": None,
            "usage": usage(self.stats) if done else None,
            **self.echo,
        }

    def _cut(self) -> bool:
        return self.stats is not None and self.stats.stop_reason == "length"

    # -- streamed -----------------------------------------------------------------------------

    def stream_start(self) -> bytes:
        created = self._sse("response.created", response=self.response("in_progress"))
        return created + self._sse("response.in_progress", response=self.response("in_progress"))

    def stream_event(self, event: Any) -> bytes | None:
        return self._consume(event) or None

    def stream_end(self) -> bytes:
        out = self._close()
        status = "incomplete" if self._cut() else "completed"
        return out + self._sse(f"response.{status}", response=self.response(status))

    def stream_error(self, error: Any) -> bytes:
        out = self._sse("error", message=error.message, code=error.code, param=error.param)
        failed = self.response("failed")
        failed["error"] = {"code": "server_error", "message": error.message}
        return out + self._sse("response.failed", response=failed)

    def _sse(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        data = json.dumps(body, ensure_ascii=False)
        return f"event: {kind}\ndata: {data}\n\n".encode()

    # -- items --------------------------------------------------------------------------------

    def _consume(self, event: Any) -> bytes:
        if isinstance(event, ThinkingDelta) and event.text:
            out = self._open("reasoning")
            self.open["content"][0]["text"] += event.text
            return out + self._sse(
                "response.reasoning_text.delta",
                item_id=self.open["id"],
                output_index=len(self.output),
                content_index=0,
                delta=event.text,
            )
        if isinstance(event, TextDelta) and event.text:
            out = self._open("message")
            self.open["content"][0]["text"] += event.text
            return out + self._sse(
                "response.output_text.delta",
                item_id=self.open["id"],
                output_index=len(self.output),
                content_index=0,
                delta=event.text,
                logprobs=[],
            )
        if isinstance(event, ToolCallEvent):
            out = self._close()
            call = event.call
            arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)
            item = {
                "type": "function_call",
                "id": _new_id("fc"),
                "call_id": call.id,
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
            index = len(self.output)
            out += self._sse("response.output_item.added", output_index=index, item=dict(item))
            out += self._sse(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            )
            out += self._sse(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=arguments,
                name=call.name,
            )
            item.update(arguments=arguments, status="completed")
            self.output.append(item)
            return out + self._sse("response.output_item.done", output_index=index, item=item)
        if isinstance(event, Finished):
            self.stats = event.stats
        return b""

    def _open(self, kind: str) -> bytes:
        """Start an item of `kind` unless one is open (closing another kind first)."""
        if self.open is not None and self.open["type"] == kind:
            return b""
        out = self._close()
        index = len(self.output)
        if kind == "reasoning":
            self.open = {
                "type": "reasoning",
                "id": _new_id("rs"),
                "summary": [],
                "content": [{"type": "reasoning_text", "text": ""}],
                "status": "in_progress",
            }
            added = {**self.open, "content": []}
            part = {"type": "reasoning_text", "text": ""}
        else:
            self.open = {
                "type": "message",
                "id": _new_id("msg"),
                "role": "assistant",
                "status": "in_progress",
                "content": [{"type": "output_text", "text": "", "annotations": []}],
            }
            added = {**self.open, "content": []}
            part = {"type": "output_text", "text": "", "annotations": []}
        out += self._sse("response.output_item.added", output_index=index, item=added)
        return out + self._sse(
            "response.content_part.added",
            item_id=self.open["id"],
            output_index=index,
            content_index=0,
            part=part,
        )

    def _close(self) -> bytes:
        """Finish the open item (its done events); b"" when none is open."""
        item, self.open = self.open, None
        if item is None:
            return b""
        index = len(self.output)
        part = item["content"][0]
        if item["type"] == "reasoning":
            out = self._sse(
                "response.reasoning_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
            )
        else:
            out = self._sse(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
        out += self._sse(
            "response.content_part.done",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=part,
        )
        item["status"] = "completed"
        self.output.append(item)
        return out + self._sse("response.output_item.done", output_index=index, item=item)
