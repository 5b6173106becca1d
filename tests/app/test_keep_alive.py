"""Memory a user notices: the idle model unloads after its keep-alive and loads again with the
next message; low memory drops the prompt caches first, then (critical) the model."""

from __future__ import annotations

import threading

import pytest

from app.engine_service import (
    CachesDropped,
    EngineOutput,
    EngineService,
    ModelLoaded,
    ModelReloading,
    ModelUnloaded,
    ServiceStatus,
)
from app.engines.contract import Finished, LocalModel
from app.keep_alive import KeepAliveError, format_keep_alive, parse_keep_alive
from app.options import GenerationOptions
from app.session import AppSession, ModelStatusChanged, Notice
from tests.doubles import fake_factory, scripted_factory

TIMEOUT = 60
HELLO = [{"role": "user", "content": "Say hello."}]


# -- the keep-alive's syntax --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30m", 1800), ("2h", 7200), ("90s", 90), ("1h30m", 5400), ("600", 600), ("0", 0),
     ("0.5s", 0.5), ("never", None), ("-1", None), (" Never ", None)],
)  # fmt: skip
def test_a_keep_alive_is_a_duration_or_never(written, seconds):
    assert parse_keep_alive(written) == seconds


@pytest.mark.parametrize("written", ["", "soon", "30x", "m30", "30 m", "1h 30m", "nan", "inf"])
def test_anything_else_is_refused_naming_what_is_accepted(written):
    with pytest.raises(KeepAliveError, match="30m, 2h"):
        parse_keep_alive(written)


def test_a_keep_alive_is_shown_in_words():
    assert [format_keep_alive(s) for s in (1800, 7200, 5400, 90, 0.5, None)] == [
        "30 min", "2 h", "90 min", "90 s", "0.5 s", "never",
    ]  # fmt: skip


# -- the engine service ---------------------------------------------------------------------------


class Recorder:
    """Every service event, with a way to wait for one."""

    def __init__(self, service: EngineService) -> None:
        self.events: list = []
        self._changed = threading.Condition()
        service.subscribe(self._add)

    def _add(self, event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, kind, timeout: float = 10.0, **fields):
        def found():
            return next(
                (e for e in self.events if isinstance(e, kind)
                 and all(getattr(e, k) == v for k, v in fields.items())),
                None,
            )  # fmt: skip

        with self._changed:
            assert self._changed.wait_for(found, timeout), f"no {kind.__name__} {fields}"
            return found()


@pytest.fixture
def fake_service():
    factory = fake_factory(words=["Hello ", "there"])
    service = EngineService(factory)
    service.factory = factory
    assert service.load(LocalModel("/models/gemma")).wait(TIMEOUT)
    yield service
    assert service.shutdown(timeout=TIMEOUT)


def answer(service: EngineService) -> list:
    job = service.generate(HELLO, options=GenerationOptions(max_tokens=8))
    return list(job.events(timeout=TIMEOUT))


def finished(events: list) -> bool:
    """The generation ended with its answer (and the job went well)."""
    ends = [e.event for e in events if isinstance(e, EngineOutput)]
    return isinstance(ends[-1], Finished) and events[-1].ok


def test_an_idle_model_unloads_after_its_keep_alive_and_loads_again_for_the_next_message(
    fake_service,
):
    seen = Recorder(fake_service)
    first = fake_service.factory.engines[0]
    fake_service.set_keep_alive(0.2)
    unloaded = seen.wait_for(ModelUnloaded)
    assert unloaded.reason == "idle" and unloaded.path == "/models/gemma"
    assert first.closed and fake_service.status is ServiceStatus.UNLOADED
    assert fake_service.is_loaded and fake_service.model_path == "/models/gemma"
    assert fake_service.unloaded_reason == "idle"

    events = answer(fake_service)
    kinds = [type(e) for e in events]
    assert kinds.index(ModelReloading) < kinds.index(ModelLoaded) < kinds.index(EngineOutput)
    assert finished(events)
    assert len(fake_service.factory.engines) == 2 and not fake_service.factory.engines[1].closed
    assert fake_service.unloaded_reason is None


def test_the_keep_alive_counts_from_the_last_job_and_never_means_never(fake_service):
    seen = Recorder(fake_service)
    fake_service.set_keep_alive(0.3)
    fake_service.set_keep_alive(None)
    answer(fake_service)
    assert not threading.Event().wait(0.6)
    assert not any(isinstance(e, ModelUnloaded) for e in seen.events)
    assert fake_service.status is ServiceStatus.READY


def test_a_remote_engine_is_never_unloaded():
    from app.engines.contract import EngineInfo, RemoteModel
    from tests.doubles import FakeEngine

    def remote(spec, progress=None):
        engine = FakeEngine(spec.source)
        engine.info = lambda: EngineInfo("remote", spec.source, "served")
        return engine

    service = EngineService(remote)
    try:
        assert service.load(RemoteModel("http://gpu-box:8000/v1")).wait(TIMEOUT)
        seen = Recorder(service)
        service.set_keep_alive(0.0)
        assert finished(answer(service))
        assert not threading.Event().wait(0.3)
        assert not any(isinstance(e, ModelUnloaded) for e in seen.events)
        assert service.status is ServiceStatus.READY
    finally:
        assert service.shutdown(timeout=TIMEOUT)


def test_low_memory_drops_the_prompt_caches_and_critical_memory_then_unloads(fake_service):
    seen = Recorder(fake_service)
    engine = fake_service.factory.engines[0]
    fake_service.relieve_memory(critical=False).wait(TIMEOUT)
    assert engine.caches_dropped == 1 and not engine.closed
    assert fake_service.status is ServiceStatus.READY

    job = fake_service.relieve_memory(critical=True)
    events = list(job.events(timeout=TIMEOUT))
    kinds = [type(e) for e in events]
    assert kinds.index(CachesDropped) < kinds.index(ModelUnloaded)  # the caches go first
    assert engine.caches_dropped == 2 and engine.closed
    assert seen.wait_for(ModelUnloaded).reason == "memory"
    assert fake_service.status is ServiceStatus.UNLOADED
    assert finished(answer(fake_service))  # loads again


def test_the_real_engine_frees_its_prompt_caches_and_answers_the_same_after_a_reload(
    tiny_checkpoint,
):
    service = EngineService(scripted_factory())
    try:
        assert service.load(LocalModel(str(tiny_checkpoint))).wait(TIMEOUT)
        options = GenerationOptions(max_tokens=6, temperature=0.0)

        def run():
            job = service.generate(HELLO, options=options, conversation_id="c")
            return next(e.event for e in job.events(timeout=TIMEOUT) if isinstance(
                e, EngineOutput) and isinstance(e.event, Finished))  # fmt: skip

        before = run()
        job = service.relieve_memory()
        dropped = next(e for e in job.events(timeout=TIMEOUT) if isinstance(e, CachesDropped))
        assert dropped.bytes_freed > 0
        assert run().stats.cached_tokens == 0  # nothing left to reuse
        seen = Recorder(service)
        service.set_keep_alive(0.0)
        seen.wait_for(ModelUnloaded, reason="idle")
        service.set_keep_alive(None)
        after = run()
        assert after.token_ids == before.token_ids and after.stats.cached_tokens == 0
    finally:
        assert service.shutdown(timeout=TIMEOUT)


# -- the session: settings, notices, the model status -------------------------------------------


@pytest.fixture
def session(tmp_path):
    with AppSession(tmp_path / "data", engine_factory=fake_factory()) as running:
        yield running


def notices(session) -> list[str]:
    seen: list[str] = []
    session.subscribe(lambda e: seen.append(e.text) if isinstance(e, Notice) else None)
    return seen


def wait_until(condition, timeout: float = 10.0) -> None:
    stop = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        stop.wait(0.02)
    raise AssertionError("timed out")


def test_the_keep_alive_setting_applies_at_once_and_the_flag_wins_for_the_run(session):
    assert session.settings.keep_alive == "30m" and session.service.keep_alive == 1800
    session.apply_settings({"keep_alive": "2h"})
    assert session.service.keep_alive == 7200
    session.set_keep_alive("never")
    assert session.service.keep_alive is None
    session.apply_settings({"keep_alive": "5m"})
    assert session.service.keep_alive is None and session.settings.keep_alive == "5m"


def test_the_next_message_after_an_idle_unload_says_it_loads_the_model_again(session):
    said = notices(session)
    states: list[str] = []
    session.subscribe(
        lambda e: states.append(e.status.state) if isinstance(e, ModelStatusChanged) else None
    )
    assert session.load_local("/models/gemma").wait(TIMEOUT)
    session.apply_settings({"keep_alive": "0.1s"})
    wait_until(lambda: session.model_status.state == "unloaded")
    assert said[-1] == "Unloaded fake after 0.1 s idle; it loads again with your next message."
    session.set_keep_alive("never")
    conversation = session.controller.new_conversation()
    turn = session.controller.send(conversation.id, "Hello again")
    assert turn.wait(TIMEOUT) and turn.status == "done"
    assert "Loading fake again…" in said
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert changes[-3:] == ["unloaded", "loading", "ready"]
    assert session.model_status.state == "ready"


def test_an_injected_memory_warning_drops_the_caches_and_a_critical_one_unloads(session):
    said = notices(session)
    assert session.load_local("/models/gemma").wait(TIMEOUT)
    session.memory_pressure("normal")
    session.memory_pressure("warning")
    wait_until(lambda: said)
    assert said == ["Memory is low: dropped the saved prompt caches."]
    assert session.model_status.state == "ready"
    session.memory_pressure("critical")
    wait_until(lambda: session.model_status.state == "unloaded")
    assert said[-1] == "Unloaded fake because memory is low; it loads again with your next message."


def test_the_memory_pressure_levels_of_a_dispatch_source_and_of_polling():
    from types import SimpleNamespace

    from app.memory_pressure import PollingMonitor, level_of

    assert [level_of(f) for f in (1, 2, 4, 6)] == ["normal", "warning", "critical", "critical"]
    readings = iter([0.5, 0.08, 0.08, 0.02, 0.5] + [0.5] * 1000)
    levels: list[str] = []
    monitor = PollingMonitor(
        levels.append, interval_s=0.005,
        read=lambda: SimpleNamespace(available=next(readings) * 100, total=100),
    )  # fmt: skip
    try:
        wait_until(lambda: len(levels) == 3)
    finally:
        monitor.stop()
    assert levels == ["warning", "critical", "normal"]  # changes only


@pytest.mark.parametrize("command", ["chat", "serve"])
def test_the_keep_alive_flag_is_checked_and_applies_to_the_run_only(session, command, capsys):
    from app.cli import build_parser
    from app.cli_args import apply_keep_alive

    with pytest.raises(SystemExit) as refused:
        build_parser(command).parse_args(["--keep-alive", "soon"])
    assert refused.value.code == 2 and "--keep-alive" in capsys.readouterr().err
    apply_keep_alive(session, build_parser(command).parse_args(["--keep-alive", "2h"]))
    assert session.service.keep_alive == 7200 and session.settings.keep_alive == "30m"
    apply_keep_alive(session, build_parser(command).parse_args([]))
    assert session.service.keep_alive == 7200
