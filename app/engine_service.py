"""The engine service: one long-lived thread that owns every MLX object; jobs in, events out.

Any thread submits jobs (`load_model`, `generate`, `unload`, `call`); they run one at a
time, in order, on the service thread, which is the only thread that ever touches MLX.
`cancel` acts at once from the caller's thread (it stops the running generation through
`engine.cancel()` and drops queued jobs).

Every job produces, in order: `JobStarted`, then its own events, then exactly one
`JobDone` (always last, also after a failure or a cancel). Events go to

- `subscribe(callback)` callbacks, called on the service thread (keep them short);
- the job's own iterator, `job.events()`, for scripts, the terminal chat and the server;
- Qt signals through `app.engine_signals.EngineSignals(service)`, queued to the thread
  of whoever connects (the GUI thread never blocks).

A job that raises is reported as `JobFailed` (plus `JobDone(ok=False)`), its kind from
the app's error taxonomy, and the service goes on serving. The engine (see
`app.engines.contract`) comes from `engine_factory(spec, progress)`, by default
`open_engine`: the local model for a `LocalModel`, the remote client for a `RemoteModel`.
A generation runs the agent loop (`app.engines.agent.run_agent`), so tools work the same
for both engines.

Memory: with a keep-alive (`set_keep_alive(seconds)`; None, the default, keeps the model),
a local model left idle that long is unloaded (`ModelUnloaded(reason="idle")`, status
`UNLOADED`); the next generation loads it again first (`ModelReloading`, then the load's
own events, under the generation's job id). `relieve_memory(critical)` (low free memory)
drops the engine's prompt caches first (`CachesDropped`); when critical, it then unloads
the model the same way (`reason="memory"`). While unloaded, `model_path` and `info`
still name the model and `is_loaded` stays true: it answers, only later.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import gc
import itertools
import logging
import queue
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.engines.agent import Tools, run_agent
from app.engines.contract import (
    Engine,
    EngineFactory,
    EngineInfo,
    EngineSpec,
    Event,
    Finished,
    GenerationError,
    GenerationStats,
    LocalModel,
)
from app.engines.factory import open_engine
from app.errors import AppError, ErrorKind, kind_of
from app.inputs.run import prepare_for_engine
from app.options import DEFAULTS, GenerationOptions
from app.subscribers import Subscribers

log = logging.getLogger(__name__)


class JobKind(enum.StrEnum):
    LOAD = "load"
    GENERATE = "generate"
    UNLOAD = "unload"
    CALL = "call"
    RELIEVE = "relieve"  # free memory: the prompt caches, then (critical) the model


class ServiceStatus(enum.StrEnum):
    NO_MODEL = "no_model"
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"
    UNLOADED = "unloaded"  # a model is chosen but out of memory; the next generation reloads it
    STOPPED = "stopped"


# -- events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceEvent:
    """Base of every event the service emits; `job_id` says which job it belongs to."""

    job_id: int


@dataclass(frozen=True)
class JobStarted(ServiceEvent):
    kind: JobKind


@dataclass(frozen=True)
class StatusChanged(ServiceEvent):
    """The service's state changed (drives "loading…", "generating…" and enabled buttons)."""

    status: ServiceStatus
    model_path: str | None


@dataclass(frozen=True)
class LoadProgress(ServiceEvent):
    fraction: float  # 0..1
    message: str


@dataclass(frozen=True)
class ModelLoaded(ServiceEvent):
    path: str  # the checkpoint folder or the remote server's URL
    info: EngineInfo


@dataclass(frozen=True)
class ModelUnloaded(ServiceEvent):
    path: str | None
    reason: str = "requested"  # "requested", or "idle" / "memory": it reloads when needed


@dataclass(frozen=True)
class ModelReloading(ServiceEvent):
    """A generation found its model unloaded (`reason` "idle" or "memory"): it loads it first."""

    path: str
    reason: str


@dataclass(frozen=True)
class CachesDropped(ServiceEvent):
    """Memory ran low: the engine dropped what it keeps between turns (its prompt caches)."""

    bytes_freed: int


@dataclass(frozen=True)
class EngineOutput(ServiceEvent):
    """One event of a generation, as the agent loop yielded it (see app.engines.contract)."""

    event: Event


@dataclass(frozen=True)
class JobFailed(ServiceEvent):
    """The job could not do its work; `message` is for people, `kind` for code."""

    kind: ErrorKind
    message: str
    details: str = ""  # traceback, for logs and a "details" disclosure


@dataclass(frozen=True)
class JobDone(ServiceEvent):
    """Always the last event of a job."""

    ok: bool
    cancelled: bool = False


# -- jobs -------------------------------------------------------------------------------


@dataclass(eq=False)
class Job:
    """A submitted job: iterate `events()`, `wait()` for it, or `cancel()` it."""

    id: int
    kind: JobKind
    args: dict[str, Any]
    _service: EngineService = field(repr=False)
    _events: queue.Queue[ServiceEvent] = field(default_factory=queue.Queue, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    cancel_requested: bool = False
    result: Any = (
        None  # load: EngineInfo; generate: the final Finished/GenerationError; call: its return
    )
    error: JobFailed | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        self._service.cancel(self.id)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done; False if `timeout` passed first."""
        return self._done.wait(timeout)

    def events(self, timeout: float | None = None) -> Iterator[ServiceEvent]:
        """This job's events in order, ending with `JobDone`. Consume from one thread only.

        `timeout` bounds the wait for each next event (raises `TimeoutError`).
        """
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(
                    f"job {self.id} ({self.kind}) sent no event for {timeout} s"
                ) from None
            yield event
            if isinstance(event, JobDone):
                return


_STOP = object()
_WAKE = object()  # the keep-alive changed: recompute how long to wait for a job


class EngineService:
    """Owns the engine on one thread; see the module docstring for the contract."""

    def __init__(
        self, engine_factory: EngineFactory | None = None, *, name: str = "engine-service"
    ):
        self._factory = engine_factory or open_engine
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.RLock()
        self._subscribers: Subscribers[ServiceEvent] = Subscribers("engine service")
        self._ids = itertools.count(1)
        self._pending: dict[int, Job] = {}
        self._current: Job | None = None
        self._engine: Engine | None = None  # touched only on the service thread
        self._spec: EngineSpec | None = None  # what `_engine` was opened from
        self._unloaded: str | None = None  # why the chosen model is out of memory, if it is
        self._keep_alive_s: float | None = None
        self._idle_since = time.monotonic()
        self._model_path: str | None = None
        self._info: EngineInfo | None = None
        self._status = ServiceStatus.NO_MODEL
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # -- state (read from any thread) -----------------------------------------------------

    @property
    def status(self) -> ServiceStatus:
        return self._status

    @property
    def model_path(self) -> str | None:
        """The checkpoint folder (or remote URL) of the loaded model, or None."""
        return self._model_path

    @property
    def info(self) -> EngineInfo | None:
        """What the loaded engine said about itself, or None."""
        return self._info

    @property
    def is_loaded(self) -> bool:
        """A model is chosen and answers (perhaps after reloading: see `unloaded_reason`)."""
        return self._model_path is not None

    @property
    def unloaded_reason(self) -> str | None:
        """Why the chosen model is out of memory ("idle" or "memory"); None when it is in."""
        return self._unloaded

    @property
    def keep_alive(self) -> float | None:
        return self._keep_alive_s

    def set_keep_alive(self, seconds: float | None) -> None:
        """Unload a local model idle for `seconds` (None: never); it reloads when needed."""
        self._keep_alive_s = None if seconds is None else max(0.0, float(seconds))
        self._queue.put(_WAKE)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[ServiceEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on the service thread for every event; returns an unsubscribe."""
        return self._subscribers.subscribe(callback)

    # -- submitting -----------------------------------------------------------------------

    def load(self, spec: EngineSpec | str) -> Job:
        """Open an engine (a path means `LocalModel(path)`), unloading the current one first."""
        if isinstance(spec, str):
            spec = LocalModel(spec)
        return self._submit(JobKind.LOAD, spec=spec, path=spec.source)

    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Tools | None = None,
        options: GenerationOptions = DEFAULTS,
        conversation_id: str | None = None,
        inputs: Any = None,
    ) -> Job:
        """Stream an answer to Hugging Face chat `messages` through the agent loop.

        Long inputs in the messages (documents, recordings and videos over one clip) are
        prepared first (`app.inputs`; `inputs`: an `app.inputs.run.InputContext`)."""
        return self._submit(
            JobKind.GENERATE,
            messages=list(messages),
            tools=tools,
            options=options,
            conversation_id=conversation_id,
            inputs=inputs,
        )

    def unload(self) -> Job:
        """Drop the model and free its memory."""
        return self._submit(JobKind.UNLOAD)

    def relieve_memory(self, critical: bool = False) -> Job:
        """Free memory: drop the prompt caches; when `critical`, then unload the model too."""
        return self._submit(JobKind.RELIEVE, critical=critical)

    def call(self, fn: Callable[[Any], Any]) -> Job:
        """Run `fn(engine)` on the service thread (engine may be None); `job.result` is its return."""
        return self._submit(JobKind.CALL, fn=fn)

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (or, with None, the running generation and every queued job).

        A queued job is dropped (it reports `JobDone(cancelled=True)`); a running generation
        is stopped through `engine.cancel()` and ends with its `Finished` event. A running
        load cannot be interrupted and completes.
        """
        with self._lock:
            # Everything queued, except freeing memory (not the user's work to stop).
            queued = [j for j in self._pending.values() if j.kind is not JobKind.RELIEVE]
            targets = queued if job_id is None else []
            if job_id is not None and job_id in self._pending:
                targets.append(self._pending[job_id])
            current = self._current
            # A running load or call cannot be interrupted; only a generation stops early.
            if (
                current is not None
                and current.kind is JobKind.GENERATE
                and (job_id is None or current.id == job_id)
            ):
                targets.append(current)
            for job in targets:
                job.cancel_requested = True
            engine = self._engine
        running_generation = (
            current is not None and current.cancel_requested and current.kind is JobKind.GENERATE
        )
        if running_generation and engine is not None:
            engine.cancel()  # the engine's cancel is a thread-safe flag

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Cancel everything, unload, stop the thread; True if it stopped within `timeout`."""
        self.cancel()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        _LIVE.discard(self)
        return not self._thread.is_alive()

    def _submit(self, kind: JobKind, **args: Any) -> Job:
        if not self._thread.is_alive():
            raise RuntimeError("The engine service has been shut down.")
        job = Job(next(self._ids), kind, args, self)
        with self._lock:
            self._pending[job.id] = job
        self._queue.put(job)
        return job

    # -- the service thread ---------------------------------------------------------------

    def _emit(self, job: Job | None, event: ServiceEvent) -> None:
        if job is not None:
            job._events.put(event)
        self._subscribers.emit(event)

    def _set_status(self, job: Job, status: ServiceStatus) -> None:
        if status != self._status:
            self._status = status
            self._emit(job, StatusChanged(job.id, status, self._model_path))

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._idle_wait())
            except queue.Empty:  # the keep-alive ran out
                self._execute(Job(next(self._ids), JobKind.UNLOAD, {"reason": "idle"}, self))
                continue
            if item is _STOP:
                break
            if item is _WAKE:
                continue
            with self._lock:
                self._pending.pop(item.id, None)
            self._execute(item)
        # Shutting down: drop the engine here, on the thread that owns it, then MLX's
        # per-thread streams, which must not outlive this thread (see `_release_streams`).
        self._release_engine()
        _release_streams()
        self._status = ServiceStatus.STOPPED

    def _execute(self, job: Job) -> None:
        with self._lock:
            self._current = job
        try:
            self._run_job(job)
        finally:
            with self._lock:
                self._current = None
            self._idle_since = time.monotonic()
            job._done.set()

    def _idle_wait(self) -> float | None:
        """Seconds until the keep-alive unloads the model (None: nothing to unload)."""
        info = self._info
        if self._keep_alive_s is None or self._engine is None or info is None:
            return None
        if info.kind != "local":  # a remote server keeps its own models
            return None
        return max(0.0, self._idle_since + self._keep_alive_s - time.monotonic())

    def _resting_status(self) -> ServiceStatus:
        if self._engine is not None:
            return ServiceStatus.READY
        return ServiceStatus.UNLOADED if self._unloaded else ServiceStatus.NO_MODEL

    def _run_job(self, job: Job) -> None:
        if job.cancel_requested:
            self._emit(job, JobStarted(job.id, job.kind))
            self._emit(job, JobDone(job.id, ok=False, cancelled=True))
            return
        self._emit(job, JobStarted(job.id, job.kind))
        ok = True
        try:
            if job.kind is JobKind.LOAD:
                self._do_load(job)
            elif job.kind is JobKind.GENERATE:
                ok = self._do_generate(job)
            elif job.kind is JobKind.UNLOAD and job.args.get("reason", "requested") != "requested":
                self._unload_for_now(job, job.args["reason"])
            elif job.kind is JobKind.UNLOAD:
                path = self._model_path
                self._release_engine()
                self._emit(job, ModelUnloaded(job.id, path))
                self._set_status(job, ServiceStatus.NO_MODEL)
            elif job.kind is JobKind.RELIEVE:
                self._relieve(job)
            elif job.kind is JobKind.CALL:
                job.result = job.args["fn"](self._engine)
        except Exception as exc:
            ok = False
            kind = ErrorKind.LOAD if _is_load_failure(exc, job) else kind_of(exc)
            failure = JobFailed(job.id, kind, _failure_message(exc, job), traceback.format_exc())
            job.error = failure
            log.warning("engine job %s (%s) failed: %s", job.id, job.kind, failure.message)
            self._emit(job, failure)
            self._set_status(job, self._resting_status())
        self._emit(job, JobDone(job.id, ok=ok, cancelled=job.cancel_requested))

    def _do_load(self, job: Job) -> None:
        # Free the current model first: two 12B models do not fit in unified memory.
        if self._engine is not None:
            old = self._model_path
            self._release_engine()
            self._emit(job, ModelUnloaded(job.id, old))
        self._release_engine()  # an unloaded model's name, if any
        self._set_status(job, ServiceStatus.LOADING)
        self._open(job, job.args["spec"])
        self._set_status(job, ServiceStatus.READY)

    def _open(self, job: Job, spec: EngineSpec) -> None:
        path = spec.source

        def progress(fraction: float, message: str = "") -> None:
            self._emit(job, LoadProgress(job.id, max(0.0, min(1.0, float(fraction))), message))

        progress(0.0, f"Loading {path}")
        engine = self._factory(spec, progress)
        info = engine.info()
        self._engine, self._spec, self._model_path, self._info = engine, spec, path, info
        self._unloaded = None
        if job.kind is JobKind.LOAD:
            job.result = info
        progress(1.0, "Loaded")
        self._emit(job, ModelLoaded(job.id, path, info))

    def _unload_for_now(self, job: Job, reason: str) -> None:
        """Free the model's memory but keep it chosen: the next generation reloads it."""
        if self._engine is None or self._info is None or self._info.kind != "local":
            return
        path, spec, info = self._model_path, self._spec, self._info
        self._release_engine()
        self._model_path, self._spec, self._info = path, spec, info
        self._unloaded = reason
        self._emit(job, ModelUnloaded(job.id, path, reason))
        self._set_status(job, ServiceStatus.UNLOADED)

    def _relieve(self, job: Job) -> None:
        if self._engine is not None:
            freed = int(self._engine.drop_caches())
            if freed:  # give MLX's freed buffers back to the system too
                with contextlib.suppress(Exception):
                    import mlx.core as mx

                    mx.clear_cache()
            self._emit(job, CachesDropped(job.id, freed))
        if job.args["critical"]:
            self._unload_for_now(job, "memory")

    def _do_generate(self, job: Job) -> bool:
        if self._engine is None and self._unloaded and self._spec is not None:
            self._emit(job, ModelReloading(job.id, self._spec.source, self._unloaded))
            try:
                self._open(job, self._spec)
            except Exception as exc:
                message = f"Could not load the model again from {self._spec.source}: {exc}"
                raise AppError(ErrorKind.LOAD, message) from exc
        if self._engine is None:
            raise _NoModel("No model is loaded. Choose a model in Settings, then try again.")
        self._set_status(job, ServiceStatus.GENERATING)
        final: Any = None
        engine = self._engine
        try:
            prepared = prepare_for_engine(
                engine,
                job.args["messages"],
                options=job.args["options"],
                tools=job.args["tools"],
                inputs=job.args.get("inputs"),
                cancelled=lambda: job.cancel_requested,
                emit=lambda event: self._emit(job, EngineOutput(job.id, event)),
            )
            if prepared.cancelled:  # stopped while transcribing: what was done is reported
                final = Finished(GenerationStats(stop_reason="cancelled"))
                self._emit(job, EngineOutput(job.id, final))
                job.result = final
                return True
            stream = run_agent(
                engine,
                prepared.messages,
                tools=job.args["tools"],
                options=job.args["options"],
                conversation_id=job.args["conversation_id"],
                cancelled=lambda: job.cancel_requested,
            )
            cancel_sent = False
            for event in stream:
                if job.cancel_requested and not cancel_sent:
                    # cancel() may have raced with the stream starting: make sure the engine knows.
                    cancel_sent = True
                    engine.cancel()
                self._emit(job, EngineOutput(job.id, event))
                if isinstance(event, (Finished, GenerationError)):
                    final = event
        finally:
            self._set_status(job, self._resting_status())
        job.result = final
        if final is None:
            raise RuntimeError(
                "The engine's stream ended without a Finished or GenerationError event."
            )
        return isinstance(final, Finished)

    def _release_engine(self) -> None:
        engine, self._engine = self._engine, None
        self._model_path = self._info = self._spec = self._unloaded = None
        if engine is None:
            return
        try:
            engine.close()
        except Exception:
            log.exception("engine.close() failed")
        del engine
        gc.collect()
        with contextlib.suppress(Exception):
            import mlx.core as mx

            mx.clear_cache()


def _release_streams() -> None:
    """Finish MLX's work on this thread and destroy the streams it created here.

    MLX gives every thread its own default stream. One that outlives its thread (the
    global random key, seeded on the engine thread, refers to it) makes the process abort
    at exit on Linux ("terminate called without an active exception", rc 134).
    """
    if "mlx.core" not in sys.modules:  # an injected engine that never touched MLX
        return
    try:
        import mlx.core as mx

        mx.synchronize()
        mx.clear_streams()
    except Exception:  # noqa: BLE001 - shutting down: log and go on
        log.exception("releasing MLX streams failed")


# Services still running when the interpreter exits are shut down first (an engine thread
# must end cleanly, see `_release_streams`, even when the caller forgot `shutdown()`).
_LIVE: weakref.WeakSet[EngineService] = weakref.WeakSet()


@atexit.register
def _shutdown_live_services() -> None:
    for service in list(_LIVE):
        service.shutdown(timeout=10.0)


class _NoModel(AppError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.NO_MODEL, message)


def _is_load_failure(exc: BaseException, job: Job) -> bool:
    """A load that failed for a reason of its own kind (memory, not found) keeps that kind."""
    return job.kind is JobKind.LOAD and kind_of(exc) is ErrorKind.INTERNAL


def _failure_message(exc: BaseException, job: Job) -> str:
    text = str(exc) or type(exc).__name__
    if job.kind is JobKind.LOAD and job.args["path"] not in text:
        return f"Could not load the model from {job.args['path']}: {text}"
    return text
