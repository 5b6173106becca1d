"""Generations on the engine service, seen from the server's event loop.

`EngineBridge.start` submits a generation job to `app.engine_service.EngineService` and
pumps the job's events (a blocking iterator) from a small thread into an asyncio queue.
`next_event` yields the generation's events (`app.engines.contract`); a failed job arrives as
a `GenerationError`. `cancel` stops the generation through the service. `on_done` runs
on the event loop once the job has really ended on the engine thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from app.engine_service import EngineOutput, EngineService, JobDone, JobFailed, ServiceStatus
from app.engines.contract import Event, Finished, GenerationError
from app.options import GenerationOptions

_END = object()


class EngineBridge:
    """The server's handle on the shared engine service."""

    def __init__(self, service: EngineService) -> None:
        self.service = service

    @property
    def model_path(self) -> str | None:
        return self.service.model_path

    @property
    def context_limit(self) -> int:
        """The loaded model's context in tokens (0 when unknown or none is loaded)."""
        info = self.service.info
        return int(info.context_limit) if info is not None else 0

    @property
    def info(self) -> Any:
        """The loaded engine's `EngineInfo` (None when none is loaded)."""
        return self.service.info

    def unavailable_reason(self) -> str | None:
        """Why no generation can run now (for a 503), or None when one can."""
        status = self.service.status
        if status is ServiceStatus.STOPPED or not self.service.thread.is_alive():
            return "The engine has stopped."
        if status is ServiceStatus.LOADING:
            return "The model is still loading."
        if not self.service.is_loaded:
            return "No model is loaded."
        return None

    def start(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[Any] | None,
        options: GenerationOptions,
        conversation_id: str | None = None,
        on_done: Callable[[], None],
    ) -> RunningGeneration:
        loop = asyncio.get_running_loop()
        job = self.service.generate(
            messages, tools=tools, options=options, conversation_id=conversation_id
        )
        return RunningGeneration(job, loop, on_done)


class RunningGeneration:
    """One submitted generation; read `next_event` until it returns None."""

    def __init__(
        self, job: Any, loop: asyncio.AbstractEventLoop, on_done: Callable[[], None]
    ) -> None:
        self.job = job
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._on_done = on_done
        self._ended = False
        self.finished = False  # the engine's last event (Finished or GenerationError) has arrived
        self._thread = threading.Thread(target=self._pump, name=f"server-job-{job.id}", daemon=True)
        self._thread.start()

    def _deliver(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _pump(self) -> None:
        try:
            for event in self.job.events():
                if isinstance(event, EngineOutput):
                    self._deliver(event.event)
                elif isinstance(event, JobFailed):
                    self._deliver(GenerationError(event.kind, event.message))
                elif isinstance(event, JobDone):
                    break
        finally:
            self._deliver(_END)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_done)

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next engine event, or None once the job has ended; `TimeoutError` after `timeout`."""
        if self._ended:
            return None
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is _END:
            self._ended = self.finished = True
            return None
        if isinstance(item, Finished | GenerationError):
            self.finished = True
        return item

    def cancel(self) -> None:
        """Stop the generation (or drop it if it has not started); returns at once."""
        if not self.finished and not self.job.done:
            self.job.cancel()


def model_id_for(path: str | None, configured: str = "") -> str:
    """The id clients use for the served model: the configured one, else the repo id or the
    folder's name (`app.models.names.served_model_name`)."""
    if configured:
        return configured
    from app.models.names import served_model_name

    return served_model_name(path) if path else ""
