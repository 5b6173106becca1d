"""Qt signals for the engine service: its events, queued to the thread of whoever connects.

`EngineSignals(service)` is a QObject (QtCore only) that re-emits every service event
from the service thread. Qt's automatic connection type queues each emission to the
receiver's thread, so GUI slots run on the GUI thread, in the order the events happened.

Connect either to `event(object)` for everything, or to the typed signals:
`job_started(job_id, kind)`, `status_changed(status, model_path)`,
`load_progress(job_id, fraction, message)`, `model_loaded(job_id, path, info)`,
`model_unloaded(job_id)`, `text_delta(job_id, text)`, `thinking_delta(job_id, text)`,
`prefill_progress(job_id, done, total)`, `tool_call(job_id, ToolCall)`,
`tool_result(job_id, ToolResultEvent)`, `generation_finished(job_id, GenerationStats)`,
`generation_error(job_id, kind, message)`, `job_failed(job_id, kind, message)`,
`job_done(job_id, ok, cancelled)`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.engine_service import (
    EngineOutput,
    EngineService,
    JobDone,
    JobFailed,
    JobStarted,
    LoadProgress,
    ModelLoaded,
    ModelUnloaded,
    ServiceEvent,
    StatusChanged,
)
from app.engines.contract import (
    Finished,
    GenerationError,
    PrefillProgress,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
    ToolResultEvent,
)


class EngineSignals(QObject):
    """Qt face of an `EngineService` (create it on the thread whose objects will connect)."""

    event = Signal(object)
    job_started = Signal(int, str)
    status_changed = Signal(str, object)
    load_progress = Signal(int, float, str)
    model_loaded = Signal(int, str, object)
    model_unloaded = Signal(int)
    text_delta = Signal(int, str)
    thinking_delta = Signal(int, str)
    prefill_progress = Signal(int, int, int)
    tool_call = Signal(int, object)
    tool_result = Signal(int, object)
    generation_finished = Signal(int, object)
    generation_error = Signal(int, str, str)
    job_failed = Signal(int, str, str)
    job_done = Signal(int, bool, bool)

    def __init__(self, service: EngineService, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self._unsubscribe = service.subscribe(self._relay)
        self.destroyed.connect(self._unsubscribe)

    def disconnect_service(self) -> None:
        """Stop relaying (also happens when this object is destroyed)."""
        self._unsubscribe()

    def _relay(self, ev: ServiceEvent) -> None:  # runs on the service thread
        self.event.emit(ev)
        job = ev.job_id
        if isinstance(ev, EngineOutput):
            inner = ev.event
            if isinstance(inner, TextDelta):
                self.text_delta.emit(job, inner.text)
            elif isinstance(inner, ThinkingDelta):
                self.thinking_delta.emit(job, inner.text)
            elif isinstance(inner, PrefillProgress):
                self.prefill_progress.emit(job, inner.done, inner.total)
            elif isinstance(inner, ToolCallEvent):
                self.tool_call.emit(job, inner.call)
            elif isinstance(inner, ToolResultEvent):
                self.tool_result.emit(job, inner)
            elif isinstance(inner, Finished):
                self.generation_finished.emit(job, inner.stats)
            elif isinstance(inner, GenerationError):
                self.generation_error.emit(job, inner.kind, inner.message)
        elif isinstance(ev, JobStarted):
            self.job_started.emit(job, str(ev.kind))
        elif isinstance(ev, StatusChanged):
            self.status_changed.emit(str(ev.status), ev.model_path)
        elif isinstance(ev, LoadProgress):
            self.load_progress.emit(job, ev.fraction, ev.message)
        elif isinstance(ev, ModelLoaded):
            self.model_loaded.emit(job, ev.path, ev.info)
        elif isinstance(ev, ModelUnloaded):
            self.model_unloaded.emit(job)
        elif isinstance(ev, JobFailed):
            self.job_failed.emit(job, ev.kind, ev.message)
        elif isinstance(ev, JobDone):
            self.job_done.emit(job, ev.ok, ev.cancelled)
