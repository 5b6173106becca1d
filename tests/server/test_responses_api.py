"""The Responses API (`/v1/responses`) spoken to with the official `openai` package, whose
models parse every object and streamed event: text, thinking, tool calls and their round
trip, JSON Schema output, cut answers, and what a server that stores nothing refuses."""

from __future__ import annotations

import json
from typing import Literal

import httpx2
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, Field, TypeAdapter

from tests.doubles import script_turns

from .conftest import API_KEY

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


class Pet(BaseModel):
    kind: Literal["cat", "dog"]
    age: int = Field(ge=0, le=20)


def raw_post(server, body: dict) -> httpx2.Response:
    return httpx2.post(
        server.url + "/responses",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json=body,
        timeout=60,
    )


def test_a_text_answer_is_a_completed_response(client, model_id, engine_service):
    script_turns(engine_service, ["The quick brown fox"])
    response = client.responses.create(model=model_id, input="Hello", max_output_tokens=40)
    assert response.output_text == "The quick brown fox"
    assert (response.status, response.model) == ("completed", model_id)
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_the_raw_object_validates_against_the_sdk_model(server, model_id, engine_service):
    script_turns(engine_service, ["Hi there"])
    body = raw_post(server, {"model": model_id, "input": "Hello"}).json()
    parsed = Response.model_validate(body)
    assert parsed.output_text == "Hi there" and parsed.tool_choice == "auto"


def test_streamed_events_come_in_order_and_add_up_to_the_answer(server, model_id, engine_service):
    script_turns(engine_service, ["<|channel>thought\nHmm<channel|>The quick brown fox"])
    body = {"model": model_id, "input": "Hi", "stream": True, "reasoning": {"effort": "low"}}
    with httpx2.stream(
        "POST",
        server.url + "/responses",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json=body,
        timeout=60,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    adapter = TypeAdapter(ResponseStreamEvent)
    events = [adapter.validate_python(json.loads(line[6:])) for line in lines]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (thought, text) == ("Hmm", "The quick brown fox")
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "Hmm"
    assert final.output_text == "The quick brown fox"


def test_the_sdk_stream_helper_reads_the_stream(client, model_id, engine_service):
    script_turns(engine_service, ["One two three"])
    with client.responses.stream(model=model_id, input="Count") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "One two three"


def test_a_tool_call_is_a_function_call_item_and_its_output_goes_back(
    client, model_id, engine_service
):
    script_turns(engine_service, [("tool", "get_weather", {"city": "Oslo"}), "Sunny in Oslo"])
    first = client.responses.create(model=model_id, input="Weather in Oslo?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})
    assert call.call_id
    second = client.responses.create(
        model=model_id,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sun"}'},
        ],
    )
    assert second.output_text == "Sunny in Oslo"


def test_tool_choice_required_forces_a_call_from_a_random_model(client, model_id):
    tool = {
        "type": "function",
        "name": "pick",
        "parameters": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 5}},
            "required": ["n"],
        },
    }
    response = client.responses.create(
        model=model_id, input="Pick", tools=[tool], tool_choice="required", max_output_tokens=100
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and all(1 <= json.loads(c.arguments)["n"] <= 5 for c in calls)


def test_text_format_json_schema_is_enforced(client, model_id):
    response = client.responses.parse(
        model=model_id, input="A pet, please.", text_format=Pet, max_output_tokens=120
    )
    assert isinstance(response.output_parsed, Pet)


def test_an_answer_cut_by_max_output_tokens_is_incomplete(client, model_id, engine_service):
    script_turns(engine_service, [("forever", "again")])
    response = client.responses.create(model=model_id, input="Go", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 5


def test_instructions_are_the_system_prompt(client, model_id, engine_service):
    recorded = []
    generate = engine_service.generate

    def recording(*args, **kwargs):
        recorded.append(args[0])
        return generate(*args, **kwargs)

    engine_service.generate = recording
    try:
        client.responses.create(
            model=model_id, instructions="Be brief.", input="Hi", max_output_tokens=2
        )
    finally:
        del engine_service.generate
    assert recorded[-1][0] == {"role": "system", "content": "Be brief."}
    assert recorded[-1][1] == {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("previous_response_id", "resp_123"),
        ("tools", [{"type": "web_search"}]),
        ("input", [{"type": "item_reference", "id": "x"}]),
        ("text", {"format": {"type": "xml"}}),
    ],
)
def test_what_a_server_that_stores_nothing_cannot_do_is_a_400(client, model_id, field, value):
    body = {"model": model_id, "input": "Hi", field: value}
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**body)
    assert caught.value.body["param"].startswith(field)
