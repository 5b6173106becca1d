"""The app session: one core that every front end builds the same way."""

from __future__ import annotations

import threading

import pytest

from app.engines.contract import LocalModel, RemoteModel, ToolCall
from app.session import ApprovalRequested, AppSession, ModelStatusChanged
from tests.doubles import fake_factory

TIMEOUT = 60


@pytest.fixture
def factory():
    return fake_factory(words=["Hello ", "there"])


@pytest.fixture
def session(tmp_path, factory):
    with AppSession(tmp_path / "data", engine_factory=factory) as running:
        yield running


def statuses(session) -> list:
    seen: list = []
    session.subscribe(
        lambda e: seen.append(e.status) if isinstance(e, ModelStatusChanged) else None
    )
    return seen


def test_a_local_model_loads_with_the_settings_precision_and_is_remembered_on_request(session):
    session.apply_settings({"precision": "4bit", "context_length": 4096})
    seen = statuses(session)
    job = session.load_local("/models/gemma", remember=True)
    assert job.wait(TIMEOUT) and job.error is None
    assert job.args["spec"] == LocalModel("/models/gemma", bits=4, context_length=4096)
    states = [s.state for s in seen]
    assert states[0] == "loading" and states[-1] == "ready" and set(states) == {"loading", "ready"}
    assert session.model_status.name == "fake" and session.model_status.context_limit == 1024
    assert session.settings.model_path == "/models/gemma"


def test_the_cli_model_is_not_remembered(session):
    session.load_local("/models/other").wait(TIMEOUT)
    assert session.settings.model_path == ""


def test_the_settings_choose_the_backend(session, factory):
    session.apply_settings({"model_path": "/models/gemma"})
    assert session.load_from_settings().wait(TIMEOUT)
    assert session.service.model_path == "/models/gemma"
    session.apply_settings({"remote_url": "http://gpu-box:8000/v1", "remote_model": "gemma"})
    session.apply_settings({"backend": "remote"})  # the session reloads by itself
    deadline = threading.Event()
    while session.service.model_path != "http://gpu-box:8000/v1" and not deadline.wait(0.05):
        pass
    assert isinstance(session.service.info, object) and factory.engines[-1].source.startswith(
        "http"
    )


def test_an_incomplete_remote_backend_is_a_model_status_error(session):
    session.settings_store.update(
        remote_url="http://gpu-box:8000/v1", remote_api_key="env:NO_SUCH_KEY_VAR"
    )
    session._switching_backend = True  # set the backend without the automatic reload
    session.settings_store.update(backend="remote")
    session._switching_backend = False
    assert session.load_from_settings() is None
    assert (
        session.model_status.state == "error" and "NO_SUCH_KEY_VAR" in session.model_status.message
    )


def test_a_remote_spec_comes_from_the_settings_or_the_flags(session):
    session.apply_settings({"remote_url": "http://a:1/v1", "remote_api_key": "k" * 10})
    assert session.load_remote().args["spec"] == RemoteModel("http://a:1/v1", "", "k" * 10)
    assert session.load_remote("http://b:2/v1", "m").args["spec"] == RemoteModel(
        "http://b:2/v1", "m", "k" * 10
    )


def test_generation_options_are_the_settings_with_overrides(session):
    session.apply_settings({"temperature": 0.4, "max_tokens": 99})
    options = session.generation_options(max_tokens=5, top_k=None)
    assert (options.temperature, options.max_tokens, options.top_k) == (0.4, 5, None)


def test_a_tool_needing_consent_is_declined_when_nobody_can_ask(session, tmp_path):
    (tmp_path / "notes.txt").write_text("secret")
    session.offer_builtin_tools([tmp_path])
    registry = session.controller.tools
    assert {"calculator", "current_datetime", "read_text_file"} <= set(registry.tools)
    result = registry.execute(ToolCall("read_text_file", {"path": "notes.txt"}))
    assert "declined" in result.error


def test_a_front_end_that_can_ask_answers_the_approval(session, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    session.offer_builtin_tools([tmp_path])
    session.can_ask = True
    asked = []

    def answer(event):
        if isinstance(event, ApprovalRequested):
            asked.append(event.approval.prompt)
            event.approval.answer(True)

    session.subscribe(answer)
    result = session.controller.tools.execute(ToolCall("read_text_file", {"path": "notes.txt"}))
    assert result.result["content"] == "hello"
    assert "read_text_file" in asked[0] and "notes.txt" in asked[0]


def test_cancel_declines_a_waiting_approval(session, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    session.offer_builtin_tools([tmp_path])
    session.can_ask = True
    session.subscribe(lambda e: session.cancel() if isinstance(e, ApprovalRequested) else None)
    result = session.controller.tools.execute(ToolCall("read_text_file", {"path": "notes.txt"}))
    assert "declined" in result.error


def test_a_transcript_arrives_through_its_callback(session):
    session.load_local("/models/gemma").wait(TIMEOUT)
    done = threading.Event()
    got: list = []
    session.transcribe("clip.wav", lambda text, error: (got.append((text, error)), done.set()))
    assert done.wait(TIMEOUT)
    assert got == [("Hello there", None)]
