"""The remote backend against our own server on 127.0.0.1, as if it were a remote vLLM."""

from __future__ import annotations

import socket
import threading

import pytest
from PIL import Image

from app.engine_service import EngineOutput, EngineService, JobDone
from app.messages import to_openai_messages
from app.remote_backend import RemoteEngine, RemoteError, remote_engine_factory
from app.server.runner import ServerThread
from app.server.testing import LOOPBACK_API_KEY, script_turns
from mlx_model.events import Finished, TextDelta, ThinkingDelta, ToolCallEvent, ToolResultEvent
from mlx_model.tools import ToolRegistry


@pytest.fixture
def remote(loopback_server: ServerThread) -> RemoteEngine:
    return RemoteEngine.load(loopback_server.url, api_key=LOOPBACK_API_KEY)


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_chat_streams_the_same_events_as_the_local_engine(remote, loopback_service):
    script_turns(loopback_service, ["Hello from far away"])
    events = list(remote.stream([{"role": "user", "content": "Hi"}], max_tokens=30))
    assert text_of(events) == "Hello from far away"
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.stats.stop_reason == "end_of_turn"
    assert finished.stats.generated_tokens > 0 and finished.stats.prefilled_tokens > 0
    assert finished.stats.extra["messages"] == [
        {"role": "assistant", "content": "Hello from far away"}
    ]


def test_the_engine_service_runs_it_like_the_local_model(loopback_server, loopback_service):
    service = EngineService(engine_factory=remote_engine_factory(api_key=LOOPBACK_API_KEY))
    try:
        load = service.load_model(loopback_server.url)
        load.wait(30)
        assert load.error is None and service.is_loaded
        script_turns(loopback_service, ["Via the service"])
        job = service.generate([{"role": "user", "content": "Hi"}], max_tokens=20)
        events = [e.event for e in job.events(timeout=60) if isinstance(e, EngineOutput)]
        assert text_of(events) == "Via the service"
        assert job.wait(10) and isinstance(job.result, Finished)
    finally:
        service.shutdown()


def test_an_image_travels_as_a_data_url(remote, loopback_service):
    question = {"type": "text", "text": "What is in this image?"}
    plain = list(remote.stream([{"role": "user", "content": [question]}], max_tokens=2))
    image = Image.new("RGB", (40, 30), (0, 128, 255))
    with_image = list(
        remote.stream(
            [{"role": "user", "content": [question, {"type": "image", "image": image}]}],
            max_tokens=2,
        )
    )

    def prompt_tokens(events) -> int:
        stats = events[-1].stats
        return stats.prefilled_tokens + stats.cached_tokens

    assert prompt_tokens(with_image) > prompt_tokens(plain) + 10


def test_image_paths_and_arrays_become_data_urls(tmp_path):
    import numpy as np

    path = tmp_path / "photo.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": str(path)},
                {"type": "image", "image": np.zeros((4, 4, 3), dtype=np.uint8)},
                {"type": "audio", "audio": (np.zeros(1600, dtype=np.float32), 16000)},
            ],
        }
    ]
    [user] = to_openai_messages(messages)
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["image_url", "image_url", "input_audio"]
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert user["content"][2]["input_audio"]["format"] == "wav"


def test_executable_tools_run_here_between_requests(remote, loopback_service):
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    registry = ToolRegistry()
    registry.register(add)
    script_turns(loopback_service, [("tool", "add", {"a": 2, "b": 3}), "The sum is 5"])
    events = list(
        remote.stream([{"role": "user", "content": "Add 2 and 3"}], tools=registry, max_tokens=80)
    )
    [call] = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert (call.name, call.arguments) == ("add", {"a": 2, "b": 3})
    [result] = [e for e in events if isinstance(e, ToolResultEvent)]
    assert result.result == 5 and result.error is None
    assert text_of(events) == "The sum is 5"
    stats = events[-1].stats
    assert stats.stop_reason == "end_of_turn" and stats.extra["tool_steps"] == 1
    roles = [m["role"] for m in stats.extra["messages"]]
    assert roles == ["assistant", "tool", "assistant"]


def test_plain_schemas_end_the_generation_at_the_call(remote, loopback_service):
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
        remote.stream([{"role": "user", "content": "Find"}], tools=[schema], max_tokens=80)
    )
    assert [e.call.arguments for e in events if isinstance(e, ToolCallEvent)] == [{"q": "fox"}]
    assert events[-1].stats.stop_reason == "tool_call"


def test_thinking_arrives_as_thinking_events(remote, loopback_service):
    script_turns(loopback_service, ["<|channel>thought\nPondering<channel|>Done"])
    events = list(
        remote.stream([{"role": "user", "content": "Think"}], enable_thinking=True, max_tokens=40)
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
        for event in remote.stream([{"role": "user", "content": "Go"}], max_tokens=3000):
            events.append(event)
            if sum(isinstance(e, TextDelta) for e in events) == 3:
                remote.cancel()
        assert events[-1].stats.stop_reason == "cancelled"
        assert finished_remotely.wait(30)
        assert reasons == ["cancelled"]  # the server stopped generating too
    finally:
        unsubscribe()


def test_a_wrong_key_is_reported_as_auth(loopback_server):
    with pytest.raises(RemoteError) as caught:
        RemoteEngine.load(loopback_server.url, api_key="wrong-key-000")
    assert caught.value.kind == "auth"


def test_an_unknown_model_is_reported(loopback_server):
    with pytest.raises(RemoteError) as caught:
        RemoteEngine.load(loopback_server.url, model="no-such-model", api_key=LOOPBACK_API_KEY)
    assert caught.value.kind == "not_found"


def test_an_unreachable_server_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    engine = RemoteEngine.load(f"http://127.0.0.1:{port}/v1", model="m", check=False)
    [event] = list(engine.stream([{"role": "user", "content": "Hi"}]))
    assert event.kind == "connection"


def test_a_failed_load_is_a_job_failure_in_the_service():
    service = EngineService(engine_factory=remote_engine_factory(model="m"))
    try:
        job = service.load_model("http://127.0.0.1:9/v1")
        events = list(job.events(timeout=30))
        assert isinstance(events[-1], JobDone) and not events[-1].ok
        assert "127.0.0.1:9" in job.error.message
    finally:
        service.shutdown()
