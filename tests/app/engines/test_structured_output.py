"""Structured output through the engine contract: `response_format` and a forced `tool_choice`
make a random model's answers valid, on the local engine and on the remote engine (whose
server, ours on 127.0.0.1, enforces them with the same grammar).

Nothing is scripted here: the tiny model samples at random and the grammar alone makes the
answers valid. Schemas are bounded (enums, integer ranges, maxLength) so they close within
`max_tokens`.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from app.engines.agent import AgentResult, run_agent
from app.engines.contract import (
    Finished,
    GenerationError,
    LocalModel,
    RemoteModel,
    TextDelta,
    ToolCallEvent,
)
from app.engines.remote import RemoteEngine
from app.options import FunctionChoice, GenerationOptions, ResponseFormat
from tests.doubles import LOOPBACK_API_KEY, FakeEngine, scripted_factory

PET = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["cat", "dog"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 20},
        "name": {"type": "string", "maxLength": 6},
    },
    "required": ["kind", "age", "name"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 6},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}
NOW = {
    "type": "function",
    "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "Tell me about a pet."}]


@pytest.fixture(scope="module")
def local_engine(tiny_checkpoint):
    return scripted_factory()(LocalModel(str(tiny_checkpoint), context_length=4096))


@pytest.fixture(params=["local", "remote"])
def engine(request):
    if request.param == "local":
        yield request.getfixturevalue("local_engine")
    else:
        server = request.getfixturevalue("loopback_server")
        remote = RemoteEngine.open(RemoteModel(server.url, api_key=LOOPBACK_API_KEY))
        yield remote
        remote.close()


def options(**values) -> GenerationOptions:
    return GenerationOptions(**{"max_tokens": 200, "temperature": 1.0, **values})


def answer(events) -> str:
    assert isinstance(events[-1], Finished), events[-1]
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_json_schema_answer_validates(engine, seed):
    fmt = ResponseFormat.json_schema(PET, name="pet", strict=True)
    events = list(engine.stream(ASK, options=options(response_format=fmt, seed=seed)))
    jsonschema.validate(json.loads(answer(events)), PET)


def test_json_mode_answers_an_object(engine):
    events = list(
        engine.stream(
            ASK, options=options(response_format=ResponseFormat.json_object(), max_tokens=60)
        )
    )
    if events[-1].stats.stop_reason != "length":  # an open-ended object may not close in time
        assert isinstance(json.loads(answer(events)), dict)
    assert answer(events).startswith("{")


def test_tool_choice_required_forces_a_valid_call(engine):
    events = list(
        engine.stream(ASK, tools=[WEATHER, NOW], options=options(tool_choice="required", seed=3))
    )
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert calls and events[-1].stats.stop_reason == "tool_call"
    for call in calls:
        if call.name == "get_weather":
            jsonschema.validate(call.arguments, WEATHER["function"]["parameters"])


def test_a_named_function_is_the_one_called_once_without_parallel_calls(engine):
    choice = FunctionChoice("get_weather")
    events = list(
        engine.stream(
            ASK,
            tools=[WEATHER, NOW],
            options=options(tool_choice=choice, parallel_tool_calls=False, seed=4),
        )
    )
    [call] = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert call.name == "get_weather"
    jsonschema.validate(call.arguments, WEATHER["function"]["parameters"])


def test_a_schema_the_grammar_cannot_take_is_an_invalid_request(engine):
    bad = {"type": "object", "properties": {"a": {"type": "string"}}, "not": {"required": ["a"]}}
    fmt = ResponseFormat.json_schema(bad, strict=True)
    [event] = list(engine.stream(ASK, options=options(response_format=fmt)))
    assert isinstance(event, GenerationError) and event.kind == "invalid_request"


def test_a_forced_call_without_tools_is_an_invalid_request(engine):
    [event] = list(engine.stream(ASK, options=options(tool_choice="required")))
    assert isinstance(event, GenerationError) and event.kind == "invalid_request"


def test_tool_choice_none_offers_no_tools_to_the_model(local_engine):
    def prompt_tokens(choice: str) -> int:
        local_engine.engine.prompt_cache.clear()
        events = list(
            local_engine.stream(
                ASK, tools=[WEATHER], options=options(tool_choice=choice, max_tokens=1)
            )
        )
        return events[-1].stats.prefilled_tokens

    assert prompt_tokens("none") < prompt_tokens("auto")


def test_the_agent_loop_forces_the_tool_call_in_the_first_turn_only():
    def clock() -> str:
        """The time."""
        return "noon"

    engine = FakeEngine()
    engine.script([("tool", "clock", {}), "It is noon"])
    result = AgentResult.collect(
        run_agent(engine, ASK, tools=[clock], options=options(tool_choice="required"))
    )
    assert result.text == "It is noon"
    assert [r["options"].tool_choice for r in engine.requests] == ["required", "auto"]
