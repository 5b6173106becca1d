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

A job that raises is reported as `JobFailed` (plus `JobDone(ok=False)`) and the service
goes on serving. The engine itself comes from `engine_factory(path, progress=..., **opts)`,
by default `mlx_model.engine.Engine.load`; tests may inject their own.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import inspect
import itertools
import logging
import queue
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlx_model.events import EngineEvent, Finished, GenerationError

log = logging.getLogger(__name__)

EngineFactory = Callable[..., Any]  # (path, *, progress, **options) -> engine
ProgressCallback = Callable[[float, str], None]


class JobKind(enum.StrEnum):
    LOAD = "load"
    GENERATE = "generate"
    UNLOAD = "unload"
    CALL = "call"


class ServiceStatus(enum.StrEnum):
    NO_MODEL = "no_model"
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"
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
    path: str
    info: dict[str, Any]


@dataclass(frozen=True)
class ModelUnloaded(ServiceEvent):
    path: str | None


@dataclass(frozen=True)
class EngineOutput(ServiceEvent):
    """One event of a generation, as `Engine.stream` yielded it (see mlx_model.events)."""

    event: EngineEvent


@dataclass(frozen=True)
class JobFailed(ServiceEvent):
    """The job could not do its work; `message` is for people, `kind` for code."""

    kind: str  # "no_model", "load", "media", "memory", "internal", ...
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
        None  # load: info dict; generate: the final Finished/GenerationError; call: return
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


class EngineService:
    """Owns the engine on one thread; see the module docstring for the contract."""

    def __init__(
        self, engine_factory: EngineFactory | None = None, *, name: str = "engine-service"
    ):
        self._factory = engine_factory or default_engine_factory
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[ServiceEvent], None]] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, Job] = {}
        self._current: Job | None = None
        self._engine: Any = None  # touched only on the service thread
        self._model_path: str | None = None
        self._status = ServiceStatus.NO_MODEL
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- state (read from any thread) -----------------------------------------------------

    @property
    def status(self) -> ServiceStatus:
        return self._status

    @property
    def model_path(self) -> str | None:
        """The checkpoint folder of the loaded model, or None."""
        return self._model_path

    @property
    def is_loaded(self) -> bool:
        return self._model_path is not None

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[ServiceEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on the service thread for every event; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    # -- submitting -----------------------------------------------------------------------

    def load_model(self, path: str, **options: Any) -> Job:
        """Load a checkpoint folder (unloading the current model first); options go to the factory."""
        return self._submit(JobKind.LOAD, path=str(path), options=options)

    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        enable_thinking: bool = False,
        **options: Any,
    ) -> Job:
        """Stream an answer to HF-style chat `messages`; options (max_tokens, sampling...) go to `engine.stream`."""
        return self._submit(
            JobKind.GENERATE,
            messages=list(messages),
            tools=tools,
            enable_thinking=enable_thinking,
            options=options,
        )

    def unload(self) -> Job:
        """Drop the model and free its memory."""
        return self._submit(JobKind.UNLOAD)

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
            targets = list(self._pending.values()) if job_id is None else []
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
        if running_generation and engine is not None and hasattr(engine, "cancel"):
            engine.cancel()  # the engine's cancel is a thread-safe flag

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Cancel everything, unload, stop the thread; True if it stopped within `timeout`."""
        self.cancel()
        self._queue.put(_STOP)
        self._thread.join(timeout)
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
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not take the service down
                log.exception("engine service subscriber %r failed on %r", callback, event)

    def _set_status(self, job: Job, status: ServiceStatus) -> None:
        if status != self._status:
            self._status = status
            self._emit(job, StatusChanged(job.id, status, self._model_path))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            job: Job = item
            with self._lock:
                self._pending.pop(job.id, None)
                self._current = job
            try:
                self._run_job(job)
            finally:
                with self._lock:
                    self._current = None
                job._done.set()
        # Shutting down: drop the engine here, on the thread that owns it.
        self._release_engine()
        self._status = ServiceStatus.STOPPED

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
            elif job.kind is JobKind.UNLOAD:
                path = self._model_path
                self._release_engine()
                self._emit(job, ModelUnloaded(job.id, path))
                self._set_status(job, ServiceStatus.NO_MODEL)
            elif job.kind is JobKind.CALL:
                job.result = job.args["fn"](self._engine)
        except Exception as exc:
            ok = False
            failure = JobFailed(
                job.id, _failure_kind(exc, job), _failure_message(exc, job), traceback.format_exc()
            )
            job.error = failure
            log.warning("engine job %s (%s) failed: %s", job.id, job.kind, failure.message)
            self._emit(job, failure)
            self._set_status(
                job, ServiceStatus.READY if self._engine is not None else ServiceStatus.NO_MODEL
            )
        self._emit(job, JobDone(job.id, ok=ok, cancelled=job.cancel_requested))

    def _do_load(self, job: Job) -> None:
        path = job.args["path"]
        # Free the current model first: two 12B models do not fit in unified memory.
        if self._engine is not None:
            old = self._model_path
            self._release_engine()
            self._emit(job, ModelUnloaded(job.id, old))
        self._set_status(job, ServiceStatus.LOADING)

        def progress(fraction: float, message: str = "") -> None:
            self._emit(job, LoadProgress(job.id, max(0.0, min(1.0, float(fraction))), message))

        progress(0.0, f"Loading {path}")
        engine = _call_factory(self._factory, path, progress, job.args["options"])
        self._engine = engine
        self._model_path = path
        info = _engine_info(engine)
        job.result = info
        progress(1.0, "Loaded")
        self._emit(job, ModelLoaded(job.id, path, info))
        self._set_status(job, ServiceStatus.READY)

    def _do_generate(self, job: Job) -> bool:
        if self._engine is None:
            raise _NoModel("No model is loaded. Choose a model in Settings, then try again.")
        self._set_status(job, ServiceStatus.GENERATING)
        final: Any = None
        try:
            stream = self._engine.stream(
                job.args["messages"],
                tools=job.args["tools"],
                enable_thinking=job.args["enable_thinking"],
                **job.args["options"],
            )
            cancel_sent = False
            for event in stream:
                if job.cancel_requested and not cancel_sent:
                    # cancel() may have raced with the stream starting: make sure the engine knows.
                    cancel_sent = True
                    if hasattr(self._engine, "cancel"):
                        self._engine.cancel()
                self._emit(job, EngineOutput(job.id, event))
                if isinstance(event, (Finished, GenerationError)):
                    final = event
        finally:
            self._set_status(
                job, ServiceStatus.READY if self._engine is not None else ServiceStatus.NO_MODEL
            )
        job.result = final
        if final is None:
            raise RuntimeError(
                "The engine's stream ended without a Finished or GenerationError event."
            )
        return isinstance(final, Finished)

    def _release_engine(self) -> None:
        engine, self._engine, self._model_path = self._engine, None, None
        if engine is None:
            return
        for name in ("close", "unload"):
            method = getattr(engine, name, None)
            if callable(method):
                try:
                    method()
                except Exception:
                    log.exception("engine.%s() failed", name)
                break
        del engine
        gc.collect()
        with contextlib.suppress(Exception):
            import mlx.core as mx

            mx.clear_cache()


class _NoModel(RuntimeError):
    kind = "no_model"


def _failure_kind(exc: BaseException, job: Job) -> str:
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return "not_found"
    return "load" if job.kind is JobKind.LOAD else "internal"


def _failure_message(exc: BaseException, job: Job) -> str:
    text = str(exc) or type(exc).__name__
    if job.kind is JobKind.LOAD and job.args["path"] not in text:
        return f"Could not load the model from {job.args['path']}: {text}"
    return text


def _call_factory(
    factory: EngineFactory, path: str, progress: ProgressCallback, options: dict[str, Any]
) -> Any:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_progress = "progress" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if accepts_progress:
        return factory(path, progress=progress, **options)
    return factory(path, **options)


def _engine_info(engine: Any) -> dict[str, Any]:
    info = getattr(engine, "info", None)
    if callable(info):
        info = info()
    if isinstance(info, dict):
        return dict(info)
    if info is not None and hasattr(info, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(info)
    # mlx_model.engine.Engine: report what a status line needs.
    out: dict[str, Any] = {}
    for name in ("context_limit", "vocab_size"):
        value = getattr(engine, name, None)
        if isinstance(value, int):
            out[name] = value
    plan = getattr(engine, "plan", None)
    if plan is not None:
        out["plan"] = str(plan)
    return out


def default_engine_factory(
    path: str, *, progress: ProgressCallback | None = None, **options: Any
) -> Any:
    """`mlx_model.engine.Engine.load(path, **options)`, passing `progress` if it takes one.

    `path` may also be a Hugging Face repo id already in the standard cache.
    """
    from mlx_model import import_serialized
    from mlx_model.hub import resolve_checkpoint

    path = str(resolve_checkpoint(path))
    load = import_serialized("mlx_model.engine").Engine.load
    try:
        params = inspect.signature(load).parameters
    except (TypeError, ValueError):
        params = {}
    if progress is not None and "progress" in params:
        return load(path, progress=progress, **options)
    return load(path, **options)
