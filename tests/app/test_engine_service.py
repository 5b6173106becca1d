"""The engine service: one thread owns the engine; jobs in order; events in order; failures survive.

The main tests drive the real local engine on the tiny checkpoint, from a plain thread and
from a Qt event loop. A fake engine (tests/doubles.py) is used only where a test needs a
deterministic failure or a stream slow enough to cancel at a known point.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.engine_service import (
    EngineOutput,
    EngineService,
    JobDone,
    JobFailed,
    JobStarted,
    LoadProgress,
    ModelLoaded,
    ModelUnloaded,
    ServiceStatus,
    StatusChanged,
)
from app.engines.contract import Finished, GenerationError, TextDelta
from app.options import GenerationOptions
from tests.doubles import fake_factory

TIMEOUT = 120

HELLO = [{"role": "user", "content": "Say hello."}]


def greedy(max_tokens: int) -> GenerationOptions:
    return GenerationOptions(max_tokens=max_tokens, temperature=0.0)


@pytest.fixture
def service():
    svc = EngineService()
    yield svc
    assert svc.shutdown(timeout=TIMEOUT)


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def engine_events(events) -> list:
    return [e.event for e in events if isinstance(e, EngineOutput)]


# -- the real engine on the tiny checkpoint --------------------------------------------------------


def test_load_then_generate_from_a_plain_thread(
    service: EngineService, tiny_checkpoint: Path
) -> None:
    results: dict[str, list] = {}

    def worker() -> None:
        load = service.load(str(tiny_checkpoint))
        results["load"] = list(load.events(timeout=TIMEOUT))
        gen = service.generate(HELLO, options=greedy(8))
        results["gen"] = list(gen.events(timeout=TIMEOUT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(TIMEOUT * 2)
    assert not thread.is_alive()

    load = results["load"]
    assert isinstance(load[0], JobStarted) and isinstance(load[-1], JobDone) and load[-1].ok
    assert any(isinstance(e, LoadProgress) for e in load)
    loaded = next(e for e in load if isinstance(e, ModelLoaded))
    assert loaded.path == str(tiny_checkpoint) and loaded.info.context_limit > 0
    assert service.model_path == str(tiny_checkpoint) and service.status is ServiceStatus.READY

    gen = results["gen"]
    assert isinstance(gen[0], JobStarted) and isinstance(gen[-1], JobDone) and gen[-1].ok
    inner = engine_events(gen)
    assert isinstance(inner[-1], Finished)
    assert sum(isinstance(e, Finished) for e in inner) == 1
    assert 0 < inner[-1].stats.generated_tokens <= 8
    statuses = [e.status for e in gen if isinstance(e, StatusChanged)]
    assert statuses == [ServiceStatus.GENERATING, ServiceStatus.READY]


def test_cancel_mid_stream_ends_with_cancelled_and_the_service_stays_usable(
    service: EngineService, tiny_checkpoint: Path
) -> None:
    service.load(str(tiny_checkpoint)).wait(TIMEOUT)
    job = service.generate(HELLO, options=greedy(4000))
    seen = []
    for event in job.events(timeout=TIMEOUT):
        seen.append(event)
        if isinstance(event, EngineOutput) and isinstance(event.event, TextDelta) and len(seen) > 3:
            job.cancel()
    final = engine_events(seen)[-1]
    assert isinstance(final, Finished) and final.stats.stop_reason == "cancelled"
    assert final.stats.generated_tokens < 4000
    assert isinstance(seen[-1], JobDone) and seen[-1].cancelled
    again = service.generate(HELLO, options=greedy(3))
    assert again.wait(TIMEOUT) and isinstance(again.result, Finished)
    assert again.result.stats.stop_reason != "cancelled"


def test_loading_a_second_model_unloads_the_first(
    service: EngineService, tiny_checkpoint: Path, tiny_checkpoint_bf16: Path
) -> None:
    service.load(str(tiny_checkpoint)).wait(TIMEOUT)
    second = service.load(str(tiny_checkpoint_bf16))
    events = list(second.events(timeout=TIMEOUT))
    unloaded = next(i for i, e in enumerate(events) if isinstance(e, ModelUnloaded))
    loaded = next(i for i, e in enumerate(events) if isinstance(e, ModelLoaded))
    assert unloaded < loaded
    assert events[unloaded].path == str(tiny_checkpoint)
    assert service.model_path == str(tiny_checkpoint_bf16)
    gen = service.generate(HELLO, options=greedy(3))
    assert gen.wait(TIMEOUT) and isinstance(gen.result, Finished)


def test_failed_load_is_an_event_and_the_service_loads_the_next_model(
    service: EngineService, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "not-a-checkpoint"
    bad.mkdir()
    (bad / "config.json").write_text("{ broken")
    failing = service.load(str(bad))
    events = list(failing.events(timeout=TIMEOUT))
    failure = next(e for e in events if isinstance(e, JobFailed))
    assert str(bad) in failure.message
    assert isinstance(events[-1], JobDone) and not events[-1].ok
    assert service.status is ServiceStatus.NO_MODEL
    ok = service.load(str(tiny_checkpoint))
    assert ok.wait(TIMEOUT) and ok.error is None and service.is_loaded


def test_generate_without_a_model_fails_with_a_clear_message(service: EngineService) -> None:
    job = service.generate(HELLO)
    events = list(job.events(timeout=TIMEOUT))
    assert kinds(events) == ["JobStarted", "JobFailed", "JobDone"]
    assert events[1].kind == "no_model" and "No model is loaded" in events[1].message


def test_jobs_from_many_threads_all_run_one_at_a_time_on_the_service_thread(
    service: EngineService, tiny_checkpoint: Path
) -> None:
    service.load(str(tiny_checkpoint)).wait(TIMEOUT)
    threads_seen: set[int] = set()
    service.subscribe(lambda e: threads_seen.add(threading.get_ident()))
    jobs = []
    lock = threading.Lock()

    def submit() -> None:
        job = service.generate(HELLO, options=greedy(2))
        with lock:
            jobs.append(job)

    submitters = [threading.Thread(target=submit) for _ in range(3)]
    for t in submitters:
        t.start()
    for t in submitters:
        t.join()
    for job in jobs:
        assert job.wait(TIMEOUT) and isinstance(job.result, Finished)
    assert threads_seen == {service.thread.ident}


# -- from a Qt event loop ------------------------------------------------------------------------


def test_qt_signals_arrive_on_the_gui_thread_in_order(
    qtbot, service: EngineService, tiny_checkpoint: Path
) -> None:
    from PySide6.QtCore import QThread

    from app.engine_signals import EngineSignals

    signals = EngineSignals(service)
    gui_thread = QThread.currentThread()
    received: list[object] = []
    wrong_thread: list[object] = []

    def on_event(event: object) -> None:
        if QThread.currentThread() is not gui_thread:
            wrong_thread.append(event)
        received.append(event)

    signals.event.connect(on_event)
    texts: list[str] = []
    signals.text_delta.connect(lambda job_id, text: texts.append(text))

    with qtbot.waitSignal(signals.model_loaded, timeout=TIMEOUT * 1000):
        load = service.load(str(tiny_checkpoint))
    with qtbot.waitSignal(signals.generation_finished, timeout=TIMEOUT * 1000) as finished:
        gen = service.generate(HELLO, options=greedy(6))
    qtbot.waitUntil(
        lambda: any(isinstance(e, JobDone) and e.job_id == gen.id for e in received),
        timeout=TIMEOUT * 1000,
    )

    assert wrong_thread == []
    assert finished.args[0] == gen.id
    ids = [e.job_id for e in received]
    assert ids == sorted(ids)  # the load's events all come before the generation's
    gen_events = [e for e in received if e.job_id == gen.id]
    assert isinstance(gen_events[0], JobStarted) and isinstance(gen_events[-1], JobDone)
    streamed = [e for e in engine_events(gen_events) if isinstance(e, TextDelta)]
    assert "".join(texts) == "".join(e.text for e in streamed)
    assert load.done


def test_qt_cancel_from_a_slot_stops_the_stream(
    qtbot, service: EngineService, tiny_checkpoint: Path
) -> None:
    from app.engine_signals import EngineSignals

    signals = EngineSignals(service)
    service.load(str(tiny_checkpoint)).wait(TIMEOUT)
    job = service.generate(HELLO, options=greedy(4000))
    signals.text_delta.connect(lambda job_id, text: service.cancel(job_id))
    with qtbot.waitSignal(signals.job_done, timeout=TIMEOUT * 1000) as done:
        pass
    assert done.args == [job.id, True, True]
    assert job.result.stats.stop_reason == "cancelled"


# -- deterministic failures (scripted engine) ------------------------------------------------------


def test_engine_that_raises_mid_stream_is_reported_and_the_service_goes_on() -> None:
    factory = fake_factory(words=["a ", "b ", "c "], fail_after=2)
    svc = EngineService(factory)
    try:
        svc.load("model-a").wait(TIMEOUT)
        job = svc.generate(HELLO)
        events = list(job.events(timeout=TIMEOUT))
        assert [e.event.text for e in events if isinstance(e, EngineOutput)] == ["a ", "b "]
        failure = next(e for e in events if isinstance(e, JobFailed))
        assert failure.kind == "internal" and "fake engine exploded" in failure.message
        assert "Traceback" in failure.details
        assert isinstance(events[-1], JobDone) and not events[-1].ok
        assert svc.status is ServiceStatus.READY
        factory.engines[0].fail_after = None
        again = svc.generate(HELLO)
        assert again.wait(TIMEOUT) and isinstance(again.result, Finished)
    finally:
        svc.shutdown(TIMEOUT)


def test_generation_error_event_is_passed_through_and_marks_the_job_not_ok() -> None:
    svc = EngineService(fake_factory(error_event=True))
    try:
        svc.load("m").wait(TIMEOUT)
        job = svc.generate(HELLO)
        events = list(job.events(timeout=TIMEOUT))
        assert isinstance(engine_events(events)[-1], GenerationError)
        assert isinstance(events[-1], JobDone) and not events[-1].ok and not events[-1].cancelled
    finally:
        svc.shutdown(TIMEOUT)


def test_cancel_drops_queued_jobs_before_they_start() -> None:
    svc = EngineService(fake_factory(delay=0.05, words=["x "] * 40))
    try:
        svc.load("m").wait(TIMEOUT)
        running = svc.generate(HELLO)
        queued = svc.generate(HELLO)
        next(e for e in running.events(timeout=TIMEOUT) if isinstance(e, EngineOutput))
        svc.cancel()
        assert running.wait(TIMEOUT) and queued.wait(TIMEOUT)
        assert running.result.stats.stop_reason == "cancelled"
        assert kinds(queued.events(timeout=1)) == ["JobStarted", "JobDone"]
    finally:
        svc.shutdown(TIMEOUT)


def test_a_broken_subscriber_does_not_stop_events() -> None:
    svc = EngineService(fake_factory())
    try:
        svc.subscribe(lambda e: 1 / 0)
        job = svc.load("m")
        assert kinds(job.events(timeout=TIMEOUT))[-1] == "JobDone"
        assert svc.is_loaded
    finally:
        svc.shutdown(TIMEOUT)


def test_the_engine_is_only_touched_on_the_service_thread() -> None:
    factory = fake_factory()
    svc = EngineService(factory)
    try:
        svc.load("m").wait(TIMEOUT)
        for _ in range(2):
            svc.generate(HELLO).wait(TIMEOUT)
        assert factory.engines[0].thread_ids == {svc.thread.ident}
        job = svc.call(lambda engine: threading.get_ident())
        assert job.wait(TIMEOUT) and job.result == svc.thread.ident
    finally:
        svc.shutdown(TIMEOUT)


def test_unload_closes_the_engine_and_shutdown_stops_the_thread() -> None:
    factory = fake_factory()
    svc = EngineService(factory)
    svc.load("m").wait(TIMEOUT)
    events = list(svc.unload().events(timeout=TIMEOUT))
    assert any(isinstance(e, ModelUnloaded) and e.path == "m" for e in events)
    assert factory.engines[0].closed and not svc.is_loaded
    start = time.monotonic()
    assert svc.shutdown(TIMEOUT)
    assert time.monotonic() - start < 5
    with pytest.raises(RuntimeError, match="shut down"):
        svc.generate(HELLO)
