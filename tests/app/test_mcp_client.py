"""The MCP client against real MCP server processes written with the same SDK."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engines.agent import AgentResult, run_agent
from app.engines.contract import LocalModel, ToolCall
from app.mcp_client import (
    Approval,
    MCPCall,
    MCPConfigError,
    MCPManager,
    MCPServerConfig,
    MCPStatus,
)
from app.messages import assistant_message, tool_message
from app.options import GenerationOptions
from app.tools.builtin import builtin_registry
from app.tools.registry import ToolRegistry
from tests.doubles import scripted_factory

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")


def stdio_config(name: str, on_call: str = "", **options) -> MCPServerConfig:
    env = {"MCP_TEST_ON_CALL": on_call} if on_call else {}
    return MCPServerConfig(name, command=(sys.executable, str(SERVER_SCRIPT)), env=env, **options)


class Recorder:
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.calls: list[MCPCall] = []
        self.statuses: list[tuple[str, MCPStatus, str]] = []

    def approve(self, call: MCPCall) -> bool:
        self.calls.append(call)
        return self.answer

    def on_status(self, name: str, status: MCPStatus, message: str) -> None:
        self.statuses.append((name, status, message))


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def manager(recorder: Recorder) -> Iterator[MCPManager]:
    with MCPManager(approve=recorder.approve, on_status=recorder.on_status) as running:
        assert running.add_server(stdio_config("calc")) is MCPStatus.READY
        yield running


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path):
    """The real local engine on the tiny checkpoint, its model turns scripted."""
    return scripted_factory()(LocalModel(str(tiny_checkpoint)))


def generate(engine, messages, tools, scripts, max_tokens=80) -> AgentResult:
    """Run the agent loop on the scripted engine."""
    engine.script(scripts)
    options = GenerationOptions(max_tokens=max_tokens)
    return AgentResult.collect(run_agent(engine, messages, tools=tools, options=options))


def test_discovers_both_tools_with_their_schemas(manager):
    infos = {info.name: info for info in manager.tool_infos()}
    assert set(infos) == {"add", "word_count"}
    assert infos["add"].input_schema["properties"]["a"]["type"] == "integer"
    assert infos["add"].input_schema["required"] == ["a", "b"]
    assert infos["word_count"].description == "Count the words and characters of a text."


def test_tools_join_the_registry_beside_the_builtins(manager):
    registry = builtin_registry()
    names = manager.register_into(registry)
    assert names == ["add", "word_count"]
    assert "calculator" in registry and "add" in registry
    schema = next(s for s in registry.schemas() if s["function"]["name"] == "add")
    assert schema["function"]["parameters"]["required"] == ["a", "b"]


def test_a_taken_name_gets_the_server_name_in_front(manager):
    tools = manager.tools(taken={"add"})
    assert [t.name for t in tools] == ["calc_add", "word_count"]


def test_forced_call_round_trip_through_the_engine(manager, recorder, engine):
    registry = ToolRegistry()
    manager.register_into(registry)
    result = generate(
        engine,
        [{"role": "user", "content": "Add 2 and 3"}],
        registry,
        [("tool", "add", {"a": 2, "b": 3}), "The sum is 5"],
    )
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("add", {"a": 2, "b": 3})]
    assert [(r.result, r.error) for r in result.tool_results] == [(5, None)]
    assert result.text == "The sum is 5"
    assert result.stats.stop_reason == "end_of_turn"
    assert recorder.calls[-1] == MCPCall("calc", "add", {"a": 2, "b": 3}, "add")


def test_a_declined_call_is_a_tool_error_and_nothing_runs(recorder, manager):
    registry = ToolRegistry()
    manager.register_into(registry)
    recorder.answer = False
    try:
        result = registry.execute(ToolCall("word_count", {"text": "one two"}))
    finally:
        recorder.answer = True
    assert result.error == "the user declined to run word_count"


def test_always_allow_runs_later_calls_of_that_tool_without_asking(manager):
    asked: list[str] = []
    remembered: list[str] = []
    answers = {"calc/add": Approval.ALWAYS, "calc/word_count": Approval.DENY}
    saved = manager.approve, manager.on_always_allow
    manager.approve = lambda call: asked.append(call.key) or answers[call.key]
    manager.on_always_allow = remembered.append
    registry = ToolRegistry()
    manager.register_into(registry)
    try:
        first = registry.execute(ToolCall("add", {"a": 1, "b": 2}))
        second = registry.execute(ToolCall("add", {"a": 3, "b": 4}))
        other = registry.execute(ToolCall("word_count", {"text": "a b"}))
    finally:
        manager.approve, manager.on_always_allow = saved
        manager.always_allowed.clear()
    assert (first.result, second.result) == (3, 7)
    assert other.error == "the user declined to run word_count"
    assert asked == ["calc/add", "calc/word_count"]  # the second add was not asked
    assert remembered == ["calc/add"]


def test_a_tool_remembered_as_always_allowed_is_not_asked_again(manager):
    saved = manager.approve
    manager.approve = lambda call: pytest.fail("asked about an always-allowed tool")
    manager.always_allowed.add("calc/word_count")
    registry = ToolRegistry()
    manager.register_into(registry)
    try:
        result = registry.execute(ToolCall("word_count", {"text": "one two"}))
    finally:
        manager.approve = saved
        manager.always_allowed.clear()
    assert result.result == {"words": 2, "characters": 7}


def test_without_an_approval_callback_an_untrusted_call_is_refused(manager):
    saved = manager.approve
    manager.approve = None
    registry = ToolRegistry()
    manager.register_into(registry)
    try:
        result = registry.execute(ToolCall("add", {"a": 1, "b": 2}))
    finally:
        manager.approve = saved
    assert result.result is None and "needs the user's approval" in result.error


def test_trusted_server_runs_without_asking():
    asked: list[MCPCall] = []
    with MCPManager(approve=lambda call: asked.append(call) or False) as manager:
        manager.add_server(stdio_config("trusted", trusted=True))
        registry = ToolRegistry()
        manager.register_into(registry)
        result = registry.execute(ToolCall("word_count", {"text": "one two three"}))
    assert result.result == {"words": 3, "characters": 13}
    assert asked == []


def test_server_that_exits_mid_call_is_reported_and_the_chat_continues(engine):
    recorder = Recorder()
    with MCPManager(approve=recorder.approve, on_status=recorder.on_status) as manager:
        assert manager.add_server(stdio_config("crashy", on_call="exit")) is MCPStatus.READY
        registry = ToolRegistry()
        manager.register_into(registry)
        question = [{"role": "user", "content": "Add"}]
        # Plain schemas: the turn stops at the call and the app runs it.
        asked = generate(engine, question, registry.schemas(), [("tool", "add", {"a": 1, "b": 2})])
        [call] = asked.tool_calls
        result = registry.execute(call)
        assert "crashy" in result.error and "add" in result.error
        status, message = manager.status()["crashy"]
        assert status is MCPStatus.FAILED
        assert ("crashy", MCPStatus.FAILED, message) in recorder.statuses
        assert manager.tool_infos() == []  # its tools are no longer offered
        # The chat goes on: the failure is the tool's answer and the model replies to it.
        follow_up = generate(
            engine,
            [
                *question,
                assistant_message("", calls=[call]),
                tool_message(call, error=result.error),
            ],
            None,
            ["Sorry, the tool failed"],
            max_tokens=40,
        )
        assert follow_up.error is None and follow_up.text == "Sorry, the tool failed"


def test_engine_loop_continues_after_an_mcp_server_exits_mid_call(engine):
    with MCPManager(approve=lambda call: True) as manager:
        manager.add_server(stdio_config("crashy2", on_call="exit"))
        registry = ToolRegistry()
        manager.register_into(registry)
        result = generate(
            engine,
            [{"role": "user", "content": "Add"}],
            registry,
            [("tool", "add", {"a": 1, "b": 2}), "Sorry"],
        )
        assert result.error is None and result.stats is not None
        assert result.tool_results[0].error and result.text == "Sorry"


def test_server_that_hangs_times_out():
    with MCPManager(approve=lambda call: True) as manager:
        manager.add_server(stdio_config("stuck", on_call="hang", timeout_s=1.5))
        registry = ToolRegistry()
        manager.register_into(registry)
        started = time.monotonic()
        result = registry.execute(ToolCall("add", {"a": 1, "b": 2}))
        elapsed = time.monotonic() - started
        assert "did not answer add within 1.5 s" in result.error
        assert elapsed < 8
        assert manager.status()["stuck"][0] is MCPStatus.FAILED


def test_a_command_that_does_not_exist_is_reported():
    recorder = Recorder()
    with MCPManager(on_status=recorder.on_status) as manager:
        status = manager.add_server(
            MCPServerConfig("missing", command=("/nonexistent/mcp-server",))
        )
        assert status is MCPStatus.FAILED
        assert "not found" in manager.status()["missing"][1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_server_tools_work_the_same():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        with MCPManager(approve=lambda call: True) as manager:
            config = MCPServerConfig("web", url=f"http://127.0.0.1:{port}/mcp")
            assert manager.add_server(config) is MCPStatus.READY, manager.status()
            registry = ToolRegistry()
            manager.register_into(registry)
            assert registry.execute(ToolCall("add", {"a": 20, "b": 22})).result == 42
    finally:
        process.terminate()
        process.wait(10)


def test_config_round_trips_and_rejects_bad_entries():
    config = stdio_config("calc", trusted=True)
    assert MCPServerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(MCPConfigError):
        MCPServerConfig("both", command=("x",), url="http://127.0.0.1:1/mcp").validate()
    with pytest.raises(MCPConfigError):
        MCPServerConfig("bad name!", command=("x",)).validate()
