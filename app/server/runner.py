"""Run the server with uvicorn on a background thread (the GUI's switch, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from app.engine_service import EngineService
from app.server.app import create_app
from app.server.config import ServerConfig


def uvicorn_config(app: Any, config: ServerConfig, **overrides: Any) -> uvicorn.Config:
    """Uvicorn settings for our app: quiet, no lifespan, a bounded number of connections."""
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": "warning",
        "lifespan": "off",
        "access_log": False,
        # Connections beyond this get a plain 503 from uvicorn before reaching the app.
        "limit_concurrency": max(64, 4 * (1 + config.max_waiting)),
        "timeout_graceful_shutdown": 3,
        "server_header": False,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


class StoppableServer(uvicorn.Server):
    """Uvicorn whose SIGINT/SIGTERM stop the server without re-raising the signal afterwards.

    The first signal cancels the running generation (`on_stop`, so its client gets the end
    of the answer) and starts uvicorn's graceful shutdown; `run` then stops the engine
    thread and returns 0. A second Ctrl-C forces the exit.
    """

    def __init__(self, config: uvicorn.Config, *, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop
        self.stop_signal: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = on_stop_signals(self.request_stop)
        try:
            yield
        finally:
            restore_signals(previous)

    def request_stop(self, sig: int = signal.SIGTERM, frame: Any = None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.stop_signal = sig
        self.should_exit = True
        self._on_stop()


def on_stop_signals(handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """Install `handler(signum, frame)` for SIGINT and SIGTERM; returns the previous handlers.

    Only the main thread can; elsewhere nothing is installed and {} is returned.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class ServerThread:
    """The OpenAI-compatible server on its own thread, sharing `service` with the rest of the app.

    `start()` returns once the socket listens (or raises why it could not); `url` is then
    the base URL for clients (`http://127.0.0.1:PORT/v1`); `stop()` shuts it down.
    """

    def __init__(self, service: EngineService, config: ServerConfig | None = None) -> None:
        self.config = (config or ServerConfig()).validate()
        self.app = create_app(service, self.config)
        self._server = uvicorn.Server(uvicorn_config(self.app, self.config))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.port: int = self.config.port

    @property
    def state(self) -> Any:
        """The app's `ServerState` (queue statistics, recent generations)."""
        return self.app.state.server

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._server.started

    def start(self, timeout: float = 15.0) -> ServerThread:
        if self._thread is not None:
            raise RuntimeError("The server was already started.")
        self._thread = threading.Thread(target=self._run, name="openai-server", daemon=True)
        self._thread.start()
        ready = threading.Event()

        def poll() -> None:
            while self._thread.is_alive() and not self._server.started:
                self._thread.join(0.02)
            ready.set()

        poll_thread = threading.Thread(target=poll, daemon=True)
        poll_thread.start()
        if not ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"The server did not start listening within {timeout} s.")
        if not self._server.started:
            raise OSError(
                f"The server could not listen on {self.config.host}:{self.config.port}: {self._error}"
            )
        sockets = [s for server in getattr(self._server, "servers", []) for s in server.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        if not self._server.started and self._error is None:
            self._error = OSError("address in use or not available")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests, cancel what runs, and wait for the thread to end."""
        self._server.should_exit = True
        for generation in list(self.state.generations):
            generation.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
