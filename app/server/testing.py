"""Test helpers: the server on 127.0.0.1 with a checkpoint, and scripted model output.

A tiny random model cannot choose to answer or call a tool; `script_turns` forces the
text of the next model turns through the engine's `token_override` seam (tests only).
Used by the server, MCP and remote-backend tests, and available to GUI-level tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from app.engine_service import EngineService
from app.server.config import ServerConfig
from app.server.runner import ServerThread

# The API key of the loopback server that stands in for a remote one in the tests.
LOOPBACK_API_KEY = "remote-key-0123456789"


class ForcedTurns:
    """A `token_override`: turn k emits the ids of `scripts[k]`, then the model's own choice.

    A script ending in `None` forces that token forever after its ids (never stops by itself).
    """

    def __init__(self, scripts: Sequence[Sequence[int | None]]) -> None:
        self.scripts = [list(s) for s in scripts]
        self.turn = -1

    def __call__(self, generated: Sequence[int]) -> int | None:
        if not generated:
            self.turn += 1
        if not 0 <= self.turn < len(self.scripts):
            return None
        script = self.scripts[self.turn]
        if len(generated) < len(script) and script[len(generated)] is not None:
            return script[len(generated)]
        if script and script[-1] is None and len(script) >= 2:
            return script[-2]  # repeat the last real id forever
        return None


def turn_ids(engine: Any, text: str, *, end: str = "turn") -> list[int]:
    """Token ids that make a model turn say `text` then end (`end`: "turn", "tool_call" or "")."""
    special = engine.tokenizer.special
    closing = {"turn": special.eot_token, "tool_call": special.str_token, "": ""}[end]
    return list(engine.tokenizer.encode(text + closing))


def tool_call_text(engine: Any, name: str, arguments: dict[str, Any]) -> str:
    """The text of a tool call exactly as the model writes it."""
    from mlx_model.processing import render_tool_call

    return render_tool_call(name, arguments, engine.tokenizer.special)


def script_turns(service: EngineService, scripts: Sequence[Any]) -> ForcedTurns:
    """Force the next model turns. Each script is a string (answer text, then end of turn),
    `("tool", name, arguments)` (a tool call), `("forever", text)` (never stops) or ids."""

    def build(engine: Any) -> ForcedTurns:
        resolved: list[list[int | None]] = []
        for script in scripts:
            if isinstance(script, str):
                resolved.append(turn_ids(engine, script))
            elif isinstance(script, tuple) and script[0] == "tool":
                resolved.append(
                    turn_ids(engine, tool_call_text(engine, script[1], script[2]), end="tool_call")
                )
            elif isinstance(script, tuple) and script[0] == "forever":
                resolved.append([*turn_ids(engine, script[1], end=""), None])
            else:
                resolved.append(list(script))
        forced = ForcedTurns(resolved)
        engine.token_override = forced
        return forced

    job = service.call(build)
    job.wait()
    if job.error is not None:
        raise RuntimeError(job.error.message)
    return job.result


def clear_script(service: EngineService) -> None:
    job = service.call(lambda engine: setattr(engine, "token_override", None))
    job.wait()


def load_service(checkpoint: str | Path) -> EngineService:
    """An engine service with `checkpoint` loaded (memory limits left alone, as tests share a process)."""
    service = EngineService()
    job = service.load_model(str(checkpoint), apply_limits=False, context_length=4096)
    job.wait()
    if job.error is not None:
        service.shutdown()
        raise RuntimeError(job.error.message)
    return service


@contextlib.contextmanager
def local_server(
    checkpoint: str | Path | None = None, *, service: EngineService | None = None, **config: Any
) -> Iterator[ServerThread]:
    """A running server on a free 127.0.0.1 port (its own service unless one is given)."""
    own = service is None
    if service is None:
        assert checkpoint is not None, "give a checkpoint or a service"
        service = load_service(checkpoint)
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
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
