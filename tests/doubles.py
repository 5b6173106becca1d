"""Test doubles: scripted turns for the real local engine, a contract double, a loopback server.

A tiny random model cannot choose to answer or to call a tool. `ScriptedEngine` is the real
local engine over the tiny checkpoint whose next model turns are scripted through the
model library's own logits-processor chain (`tests/mlx_model/forced_tokens.py`), so each
turn really runs (prefill, decode, parsing, the prompt cache) and says exactly the
script. Scripts are consumed one per model turn.

`FakeEngine` implements the engine contract in memory (words `delay` seconds apart, an
optional failure); `local_server` runs our OpenAI-compatible server on 127.0.0.1, the
stand-in for a remote vLLM in the remote-backend tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from app.engine_service import EngineService
from app.engines.contract import (
    EngineInfo,
    EngineSpec,
    Finished,
    GenerationError,
    GenerationStats,
    LocalModel,
    ProgressCallback,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
)
from app.engines.factory import open_engine
from app.engines.local import LocalEngine
from app.options import GenerationOptions
from app.server.config import ServerConfig
from app.server.runner import ServerThread
from tests.mlx_model.forced_tokens import forced

# The API key of the loopback server that stands in for a remote one.
LOOPBACK_API_KEY = "remote-key-0123456789"
# Keeps the tiny model's tests fast and lets them share one process.
TEST_TUNING = {"apply_limits": False}

Script = str | tuple | list  # text | ("tool", name, arguments) | ("forever", text) | token ids


def turn_ids(tokenizer: Any, text: str, *, end: str = "turn") -> list[int]:
    """Ids that make a model turn say `text` then end (`end`: "turn", "tool_call" or "")."""
    special = tokenizer.special
    closing = {"turn": special.eot_token, "tool_call": special.str_token, "": ""}[end]
    return list(tokenizer.encode(text + closing))


def tool_call_text(tokenizer: Any, name: str, arguments: dict[str, Any]) -> str:
    """The text of a tool call exactly as the model writes it."""
    from mlx_model.processing import render_tool_call

    return render_tool_call(name, arguments, tokenizer.special)


def script_ids(tokenizer: Any, script: Script) -> list[int | None]:
    """One turn's script as token ids (see `Script`)."""
    if isinstance(script, str):
        return turn_ids(tokenizer, script)
    if isinstance(script, tuple) and script[0] == "tool":
        return turn_ids(tokenizer, tool_call_text(tokenizer, script[1], script[2]), end="tool_call")
    if isinstance(script, tuple) and script[0] == "forever":
        return [*turn_ids(tokenizer, script[1], end=""), None]
    return list(script)


class ScriptedEngine(LocalEngine):
    """The real local engine; each scripted model turn says its script (see the docstring)."""

    def __init__(self, engine: Any, spec: LocalModel) -> None:
        super().__init__(engine, spec)
        self.scripts: list[list[int | None]] = []
        self.turns = 0  # model turns streamed

    def script(self, scripts: Sequence[Script]) -> None:
        """Force the next model turns (replacing what was left of an earlier script)."""
        self.scripts = [script_ids(self.engine.tokenizer, s) for s in scripts]

    def stream(self, messages, *, tools=None, options, conversation_id=None, logits_processors=()):
        self.turns += 1
        processors = list(logits_processors)
        if self.scripts:
            processors.append(forced(self.scripts.pop(0)))
        return super().stream(
            messages,
            tools=tools,
            options=options,
            conversation_id=conversation_id,
            logits_processors=processors,
        )


def scripted_factory(**tuning: Any):
    """An engine factory opening `ScriptedEngine`s for local models (remote ones as usual)."""

    def factory(spec: EngineSpec, progress: ProgressCallback | None = None) -> Any:
        if not isinstance(spec, LocalModel):
            return open_engine(spec, progress)
        spec = dataclasses.replace(
            spec,
            context_length=spec.context_length or 4096,
            tuning={**TEST_TUNING, **tuning, **dict(spec.tuning)},
        )
        opened = LocalEngine.open(spec, progress)
        return ScriptedEngine(opened.engine, spec)

    return factory


def script_turns(service: EngineService, scripts: Sequence[Script]) -> None:
    """Script the next model turns of the service's (scripted) engine."""
    job = service.call(lambda engine: engine.script(scripts))
    job.wait()
    if job.error is not None:
        raise RuntimeError(job.error.message)


def clear_script(service: EngineService) -> None:
    service.call(lambda engine: engine is not None and engine.script([])).wait()


def scripted_service(checkpoint: str | Path) -> EngineService:
    """An engine service with `checkpoint` loaded as a `ScriptedEngine`."""
    service = EngineService(scripted_factory())
    job = service.load(LocalModel(str(checkpoint)))
    job.wait()
    if job.error is not None:
        service.shutdown()
        raise RuntimeError(job.error.message)
    return service


@contextlib.contextmanager
def local_server(
    checkpoint: str | Path | None = None, *, service: EngineService | None = None, **config: Any
) -> Iterator[ServerThread]:
    """A running server on a free 127.0.0.1 port (its own scripted service unless given one)."""
    own = service is None
    if service is None:
        assert checkpoint is not None, "give a checkpoint or a service"
        service = scripted_service(checkpoint)
    server = ServerThread(service, ServerConfig(**{"host": "127.0.0.1", "port": 0, **config}))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if own:
            service.shutdown()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeEngine:
    """The engine contract in memory: a turn streams `words` as `TextDelta`s, `delay` s apart.

    `script(...)` sets the next turns as the scripted engine's do (text, `("tool", name,
    arguments)`, `("forever", text)`), one word per token. `fail_after`: raise RuntimeError
    after that many words; `error_event`: end with a `GenerationError`; `thinking`: say it
    first; `calls`: end the first turn with these `ToolCall`s. A prompt of more than
    `CONTEXT_LIMIT` words overflows; a second stream while one runs is refused as busy.
    Cancellable like the real engines.
    """

    CONTEXT_LIMIT = 1024

    def __init__(
        self,
        source: str = "fake",
        *,
        words: list[str] | None = None,
        delay: float = 0.0,
        fail_after: int | None = None,
        error_event: bool = False,
        thinking: str = "",
        calls: list[ToolCall] | None = None,
    ) -> None:
        self.source = source
        self.words = words if words is not None else [f"w{i} " for i in range(5)]
        self.delay = delay
        self.fail_after = fail_after
        self.error_event = error_event
        self.thinking = thinking
        self.scripts: list[Script] = [list(calls)] if calls else []
        self.requests: list[dict[str, Any]] = []
        self.closed = False
        self.caches_dropped = 0
        self.thread_ids: set[int] = set()
        self._cancel = threading.Event()
        self._busy = threading.Lock()

    def info(self) -> EngineInfo:
        return EngineInfo("local", self.source, "fake", context_limit=self.CONTEXT_LIMIT)

    def script(self, scripts: Sequence[Script]) -> None:
        self.scripts = list(scripts)

    def cancel(self) -> None:
        self._cancel.set()

    def drop_caches(self) -> int:
        self.caches_dropped += 1
        return 0

    def close(self) -> None:
        self.closed = True

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        options: GenerationOptions,
        conversation_id: str | None = None,
    ) -> Iterator[Any]:
        self._cancel.clear()
        if not self._busy.acquire(blocking=False):
            yield GenerationError("busy", "the fake engine is already generating")
            return
        try:
            yield from self._turn(list(messages), tools, options, conversation_id)
        finally:
            self._busy.release()

    def _turn(self, messages, tools, options, conversation_id) -> Iterator[Any]:
        self.thread_ids.add(threading.get_ident())
        self.requests.append(
            {"messages": messages, "tools": tools, "options": options,
             "conversation_id": conversation_id}
        )  # fmt: skip
        prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
        if prompt > self.CONTEXT_LIMIT:
            yield GenerationError("context_overflow", f"{prompt} words, over {self.CONTEXT_LIMIT}")
            return
        words, calls, forever = self.words, [], False
        if self.scripts:
            script = self.scripts.pop(0)
            if isinstance(script, str):
                words = [w + " " for w in script.split(" ")]
                words[-1] = words[-1].rstrip()
            elif isinstance(script, tuple) and script[0] == "forever":
                words, forever = [script[1] + " "], True
            elif isinstance(script, tuple) and script[0] == "tool":
                calls = [ToolCall(script[1], dict(script[2]), id=f"call_{len(self.requests)}")]
            else:
                calls = list(script)
        if self.thinking:
            yield ThinkingDelta(self.thinking)
        stats = GenerationStats(
            prefilled_tokens=prompt, context_limit=self.CONTEXT_LIMIT, ttft_s=0.001
        )
        if calls:
            for call in calls:
                yield ToolCallEvent(call)
            stats.generated_tokens, stats.stop_reason = len(calls), "tool_call"
            yield Finished(stats)
            return
        count, reason = 0, "end_of_turn"
        while count < len(words) or forever:
            if self._cancel.is_set():
                reason = "cancelled"
                break
            if count >= options.max_tokens:
                reason = "length"
                break
            if self.fail_after is not None and count == self.fail_after:
                raise RuntimeError("fake engine exploded")
            if self.delay:
                time.sleep(self.delay)
            yield TextDelta(words[count % len(words)])
            count += 1
        if self.error_event:
            yield GenerationError(
                "context_overflow", "The conversation is too long for the context."
            )
            return
        stats.generated_tokens, stats.stop_reason = count, reason
        stats.context_tokens = prompt + count
        yield Finished(stats)


def fake_factory(**defaults: Any):
    """An engine factory making `FakeEngine`s; `factory.engines` lists those it made."""
    engines: list[FakeEngine] = []

    def factory(spec: EngineSpec, progress: ProgressCallback | None = None) -> FakeEngine:
        if "missing" in spec.source:
            raise FileNotFoundError(f"No checkpoint at {spec.source}")
        engine = FakeEngine(spec.source, **defaults)
        engines.append(engine)
        return engine

    factory.engines = engines  # type: ignore[attr-defined]
    return factory
