"""The engine contract, one suite for every engine: the local MLX engine, the remote engine
(against our own server on 127.0.0.1) and the in-memory test double.

Each case scripts the model's next turns the same way (text, a tool call, a turn that never
ends by itself) and checks what any engine must do: stream, cancel within a turn and be
usable again, take part in the agent loop's tool round trip, report stats and honour
`max_tokens`, and report failures as typed `GenerationError`s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from app.engines.agent import AgentResult, run_agent
from app.engines.contract import (
    Engine,
    Finished,
    GenerationError,
    LocalModel,
    RemoteModel,
    TextDelta,
    ToolCallEvent,
)
from app.engines.remote import RemoteEngine
from app.options import GenerationOptions
from app.tools.registry import ToolRegistry
from tests.doubles import LOOPBACK_API_KEY, FakeEngine, script_turns, scripted_factory

ENGINES = ["local", "remote", "double"]
HI = [{"role": "user", "content": "Hi"}]


@dataclass
class Contender:
    """An engine under test and how to script its model's next turns."""

    engine: Engine
    script: Callable[[Sequence[Any]], None]


@pytest.fixture(scope="module")
def local_engine(tiny_checkpoint):
    return scripted_factory()(LocalModel(str(tiny_checkpoint), context_length=4096))


@pytest.fixture(params=ENGINES)
def contender(request) -> Contender:
    if request.param == "local":
        engine = request.getfixturevalue("local_engine")
        engine.engine.prompt_cache.clear()
        yield Contender(engine, engine.script)
        engine.script([])
    elif request.param == "remote":
        server = request.getfixturevalue("loopback_server")
        service = request.getfixturevalue("loopback_service")
        engine = RemoteEngine.open(RemoteModel(server.url, api_key=LOOPBACK_API_KEY))
        yield Contender(engine, lambda scripts: script_turns(service, scripts))
        engine.close()
    else:
        engine = FakeEngine()
        yield Contender(engine, engine.script)


def options(**values: Any) -> GenerationOptions:
    return GenerationOptions(**{"max_tokens": 60, "temperature": 0.0, **values})


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_a_turn_streams_its_text_in_pieces_and_ends_with_finished(contender):
    contender.script(["The quick brown fox"])
    events = list(contender.engine.stream(HI, options=options()))
    assert text_of(events) == "The quick brown fox"
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    assert isinstance(events[-1], Finished)
    assert not any(isinstance(e, Finished | GenerationError) for e in events[:-1])
    assert events[-1].stats.stop_reason == "end_of_turn"


def test_stats_count_the_prompt_and_the_answer(contender):
    contender.script(["One two three"])
    stats = list(contender.engine.stream(HI, options=options()))[-1].stats
    assert stats.generated_tokens > 0
    assert stats.prefilled_tokens + stats.cached_tokens > 0
    assert stats.ttft_s > 0


def test_max_tokens_ends_the_turn_with_length(contender):
    contender.script([("forever", "hello")])
    events = list(contender.engine.stream(HI, options=options(max_tokens=5)))
    stats = events[-1].stats
    assert stats.stop_reason == "length" and stats.generated_tokens == 5


def test_cancel_stops_the_turn_and_the_engine_is_usable_right_after(contender):
    engine = contender.engine
    contender.script([("forever", "hello"), "Again"])
    events = []
    for event in engine.stream(HI, options=options(max_tokens=3000)):
        events.append(event)
        if sum(isinstance(e, TextDelta) for e in events) == 3:
            engine.cancel()
    assert events[-1].stats.stop_reason == "cancelled"
    assert events[-1].stats.generated_tokens < 3000
    again = list(engine.stream(HI, options=options()))
    assert text_of(again) == "Again" and again[-1].stats.stop_reason == "end_of_turn"


def test_a_tool_round_trip_through_the_agent_loop(contender):
    registry = ToolRegistry()

    @registry.register
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    contender.script([("tool", "add", {"a": 2, "b": 3}), "The sum is 5"])
    result = AgentResult.collect(
        run_agent(contender.engine, [{"role": "user", "content": "Add 2 and 3"}],
                  tools=registry, options=options(max_tokens=80))
    )  # fmt: skip
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("add", {"a": 2, "b": 3})]
    assert [(r.result, r.error) for r in result.tool_results] == [(5, None)]
    assert result.text == "The sum is 5"
    assert result.stats.stop_reason == "end_of_turn" and result.stats.extra["tool_steps"] == 1


def lookup(q: str) -> str:
    """Look something up.

    Args:
        q: what to look up.
    """
    return q


def test_plain_schemas_end_the_turn_at_the_call(contender):
    schema = ToolRegistry()
    schema.register(lookup)
    contender.script([("tool", "lookup", {"q": "fox"})])
    events = list(
        contender.engine.stream(HI, tools=schema.schemas(), options=options(max_tokens=80))
    )
    assert [e.call.arguments for e in events if isinstance(e, ToolCallEvent)] == [{"q": "fox"}]
    assert events[-1].stats.stop_reason == "tool_call"


def test_a_conversation_over_the_context_is_a_context_overflow_error(contender):
    long = [{"role": "user", "content": "word " * 5000}]
    [event] = [
        e
        for e in contender.engine.stream(long, options=options())
        if isinstance(e, GenerationError)
    ]
    assert event.kind == "context_overflow"


def test_a_second_turn_while_one_runs_is_refused_as_busy(contender):
    engine = contender.engine
    contender.script([("forever", "hello")])
    first = engine.stream(HI, options=options(max_tokens=3000))
    next(e for e in first if isinstance(e, TextDelta))
    second = list(engine.stream(HI, options=options()))
    assert isinstance(second[-1], GenerationError) and second[-1].kind == "busy"
    engine.cancel()
    for _ in first:
        pass


def test_cancel_from_another_thread(contender):
    engine = contender.engine
    contender.script([("forever", "hello")])
    started = threading.Event()
    timer = threading.Thread(target=lambda: started.wait(30) and engine.cancel())
    timer.start()
    events = []
    for event in engine.stream(HI, options=options(max_tokens=20_000)):
        events.append(event)
        started.set()
    timer.join()
    assert events[-1].stats.stop_reason == "cancelled"
