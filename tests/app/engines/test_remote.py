"""The remote engine against our own server on 127.0.0.1, as if it were a remote vLLM."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from app.engine_service import EngineOutput, EngineService, JobDone
from app.engines.agent import AgentResult, run_agent
from app.engines.contract import (
    Finished,
    GenerationError,
    RemoteModel,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
)
from app.engines.remote import RemoteEngine
from app.errors import AppError
from app.options import FunctionChoice, GenerationOptions, ResponseFormat
from app.tools.registry import ToolRegistry
from tests.doubles import LOOPBACK_API_KEY, free_port, local_server, script_turns


def options(**values) -> GenerationOptions:
    return GenerationOptions(**{"max_tokens": 40, **values})


@pytest.fixture
def remote(loopback_server) -> RemoteEngine:
    return RemoteEngine.open(RemoteModel(loopback_server.url, api_key=LOOPBACK_API_KEY))


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_a_turn_streams_the_same_events_as_the_local_engine(remote, loopback_service):
    script_turns(loopback_service, ["Hello from far away"])
    events = list(remote.stream([{"role": "user", "content": "Hi"}], options=options()))
    assert text_of(events) == "Hello from far away"
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.stats.stop_reason == "end_of_turn"
    assert finished.stats.generated_tokens > 0 and finished.stats.prefilled_tokens > 0


def test_the_engine_service_runs_it_like_the_local_model(loopback_server, loopback_service):
    service = EngineService()
    try:
        load = service.load(RemoteModel(loopback_server.url, api_key=LOOPBACK_API_KEY))
        load.wait(30)
        assert load.error is None and service.is_loaded
        assert service.info.kind == "remote" and service.info.name == loopback_server.state.model_id
        script_turns(loopback_service, ["Via the service"])
        job = service.generate([{"role": "user", "content": "Hi"}], options=options())
        events = [e.event for e in job.events(timeout=60) if isinstance(e, EngineOutput)]
        assert text_of(events) == "Via the service"
        assert job.wait(10) and isinstance(job.result, Finished)
    finally:
        service.shutdown()


def test_an_image_travels_as_a_data_url(remote, loopback_service):
    question = {"type": "text", "text": "What is in this image?"}
    plain = list(
        remote.stream([{"role": "user", "content": [question]}], options=options(max_tokens=2))
    )
    image = Image.new("RGB", (40, 30), (0, 128, 255))
    with_image = list(
        remote.stream(
            [{"role": "user", "content": [question, {"type": "image", "image": image}]}],
            options=options(max_tokens=2),
        )
    )

    def prompt_tokens(events) -> int:
        stats = events[-1].stats
        return stats.prefilled_tokens + stats.cached_tokens

    assert prompt_tokens(with_image) > prompt_tokens(plain) + 10


def test_every_option_the_api_can_carry_is_sent(remote):
    request = remote.request(
        [{"role": "user", "content": "Hi"}],
        None,
        GenerationOptions(
            max_tokens=9,
            temperature=0.3,
            top_p=0.8,
            top_k=20,
            min_p=0.05,
            repetition_penalty=1.1,
            seed=4,
            stop=("END",),
            enable_thinking=True,
            image_budget=560,
        ),  # fmt: skip
        conversation_id="conv-1",
    )
    assert (request["max_tokens"], request["temperature"], request["top_p"]) == (9, 0.3, 0.8)
    assert (request["seed"], request["stop"]) == (4, ["END"])
    assert request["extra_body"] == {
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": True},
        "mm_processor_kwargs": {"max_soft_tokens": 560},
        "prompt_cache_key": "conv-1",
    }


def test_the_answer_format_and_tool_choice_travel_as_openai_fields(remote):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = remote.request(
        [{"role": "user", "content": "Hi"}],
        [tool],
        GenerationOptions(
            response_format=ResponseFormat.json_schema(schema, name="n", strict=True),
            tool_choice=FunctionChoice("f"),
            parallel_tool_calls=False,
        ),
    )
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": schema, "strict": True},
    }
    assert request["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert request["parallel_tool_calls"] is False
    plain = remote.request([{"role": "user", "content": "Hi"}], [tool], GenerationOptions())
    assert "tool_choice" not in plain and "response_format" not in plain


def test_the_extra_options_reach_our_own_servers_engine(remote, loopback_service):
    recorded = []
    generate = loopback_service.generate

    def recording(*args, **kwargs):
        recorded.append(kwargs)
        return generate(*args, **kwargs)

    loopback_service.generate = recording
    try:
        list(
            remote.stream(
                [{"role": "user", "content": "Hi"}],
                options=options(max_tokens=2, min_p=0.05, repetition_penalty=1.1, image_budget=140),
                conversation_id="conv-9",
            )
        )
    finally:
        del loopback_service.generate
    sent = recorded[-1]["options"]
    assert (sent.min_p, sent.repetition_penalty, sent.image_budget) == (0.05, 1.1, 140)
    assert recorded[-1]["conversation_id"] == "conv-9"


def test_what_it_cannot_express_is_refused_by_name(remote):
    [event] = list(
        remote.stream(
            [{"role": "user", "content": "Hi"}], options=options(context_policy="drop_oldest")
        )
    )
    assert isinstance(event, GenerationError) and event.kind == "unsupported"
    assert "context_policy" in event.message


def test_the_agent_loop_runs_tools_here_between_requests(remote, loopback_service):
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    registry = ToolRegistry()
    registry.register(add)
    script_turns(loopback_service, [("tool", "add", {"a": 2, "b": 3}), "The sum is 5"])
    result = AgentResult.collect(
        run_agent(
            remote,
            [{"role": "user", "content": "Add 2 and 3"}],
            tools=registry,
            options=options(max_tokens=80),
        )
    )
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("add", {"a": 2, "b": 3})
    [outcome] = result.tool_results
    assert outcome.result == 5 and outcome.error is None
    assert result.text == "The sum is 5"
    assert result.stats.stop_reason == "end_of_turn" and result.stats.extra["tool_steps"] == 1


def test_plain_schemas_end_the_turn_at_the_call(remote, loopback_service):
    schema = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    script_turns(loopback_service, [("tool", "lookup", {"q": "fox"})])
    events = list(
        remote.stream(
            [{"role": "user", "content": "Find"}], tools=[schema], options=options(max_tokens=80)
        )
    )
    assert [e.call.arguments for e in events if isinstance(e, ToolCallEvent)] == [{"q": "fox"}]
    assert events[-1].stats.stop_reason == "tool_call"


def test_thinking_arrives_as_thinking_events(remote, loopback_service):
    script_turns(loopback_service, ["<|channel>thought\nPondering<channel|>Done"])
    events = list(
        remote.stream([{"role": "user", "content": "Think"}], options=options(enable_thinking=True))
    )
    assert "Pondering" in "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    assert text_of(events) == "Done"


def test_cancel_stops_the_remote_generation(remote, loopback_service):
    finished_remotely = threading.Event()
    reasons: list[str] = []

    def on_event(event) -> None:
        if isinstance(event, EngineOutput) and isinstance(event.event, Finished):
            reasons.append(event.event.stats.stop_reason)
            finished_remotely.set()

    unsubscribe = loopback_service.subscribe(on_event)
    try:
        script_turns(loopback_service, [("forever", "hello")])
        events = []
        for event in remote.stream(
            [{"role": "user", "content": "Go"}], options=options(max_tokens=3000)
        ):
            events.append(event)
            if sum(isinstance(e, TextDelta) for e in events) == 3:
                remote.cancel()
        assert events[-1].stats.stop_reason == "cancelled"
        assert finished_remotely.wait(30)
        assert reasons == ["cancelled"]  # the server stopped generating too
    finally:
        unsubscribe()


def test_a_wrong_key_is_reported_as_auth(loopback_server):
    with pytest.raises(AppError) as caught:
        RemoteEngine.open(RemoteModel(loopback_server.url, api_key="wrong-key-000"))
    assert caught.value.kind == "auth"


def test_an_unknown_model_is_reported(loopback_server):
    with pytest.raises(AppError) as caught:
        RemoteEngine.open(RemoteModel(loopback_server.url, "no-such-model", LOOPBACK_API_KEY))
    assert caught.value.kind == "not_found"


def test_an_unreachable_server_is_a_connection_error():
    engine = RemoteEngine.open(RemoteModel(f"http://127.0.0.1:{free_port()}/v1", "m", check=False))
    [event] = list(engine.stream([{"role": "user", "content": "Hi"}], options=options()))
    assert event.kind == "connection"


def test_a_failed_load_is_a_job_failure_in_the_service():
    service = EngineService()
    try:
        job = service.load(RemoteModel("http://127.0.0.1:9/v1", "m"))
        events = list(job.events(timeout=30))
        assert isinstance(events[-1], JobDone) and not events[-1].ok
        assert "127.0.0.1:9" in job.error.message and job.error.kind == "connection"
    finally:
        service.shutdown()


def test_a_model_alias_the_server_answers_to_is_accepted(loopback_server, loopback_service):
    spec = RemoteModel(loopback_server.url, "Gemma-Desk-Alias", LOOPBACK_API_KEY)
    with pytest.raises(AppError):
        RemoteEngine.open(spec)
    with local_server(service=loopback_service, model_aliases=("gemma-desk-alias",)) as aliased:
        engine = RemoteEngine.open(RemoteModel(aliased.url, "Gemma-Desk-Alias"))
        script_turns(loopback_service, ["Hello"])
        events = list(engine.stream([{"role": "user", "content": "Hi"}], options=options()))
        engine.close()
    assert text_of(events) == "Hello"
