"""Model downloads against a fake hub on 127.0.0.1 serving a tiny checkpoint.

huggingface_hub talks to it through `endpoint=`; every transfer fault is injected by the
server (dropped connection, silence, error status, corrupt bytes), never by mocking ours.
"""

from __future__ import annotations

import threading
import time
from collections import namedtuple

import pytest

from app.models import download as dl
from app.models.download import (
    AccessDenied,
    ChecksumMismatch,
    DownloadCancelled,
    DownloadCancelledError,
    DownloadFailed,
    DownloadFinished,
    DownloadPlanned,
    DownloadProgress,
    DownloadRetrying,
    DownloadStalled,
    FileVerified,
    InsufficientDiskSpace,
    ModelDownloader,
    OfflineModeError,
    StalledError,
)
from app.models.local import installed_models
from tests.app.hub_server import FakeHub, go_online

WEIGHTS = "model.safetensors"


@pytest.fixture
def online(monkeypatch):
    """Undo the suite-wide HF_HUB_OFFLINE: these tests only talk to 127.0.0.1."""
    go_online(monkeypatch)


@pytest.fixture
def hub(tiny_checkpoint_bf16, online):
    with FakeHub(tiny_checkpoint_bf16) as server:
        yield server


@pytest.fixture
def make(hub, tmp_path):
    """Build a downloader for the fake hub; its events are collected in `.events`."""

    def build(**overrides) -> ModelDownloader:
        events: list = []
        options = dict(
            endpoint=hub.endpoint, token=False, on_event=events.append, chunk_size=16_384,
            progress_interval_s=0.0, retry_backoff_s=0.01, stall_timeout_s=0.5,
            disk_margin_bytes=0,
        )  # fmt: skip
        options.update(overrides)
        downloader = ModelDownloader(hub.repo_id, tmp_path / "models", **options)
        downloader.events = events
        return downloader

    return build


def of_type(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_a_download_fetches_every_file_and_verifies_each(make, hub, tiny_checkpoint_bf16):
    downloader = make()
    model = downloader.run()
    assert model.path == downloader.dest.resolve()
    for source in hub.files():
        rel = source.relative_to(tiny_checkpoint_bf16).as_posix()
        assert (model.path / rel).read_bytes() == source.read_bytes(), rel
    verified = {e.file: e.algorithm for e in of_type(downloader.events, FileVerified)}
    assert verified[WEIGHTS] == "sha256"
    assert verified["config.json"] == "git-sha1"
    assert set(verified) == {p.relative_to(tiny_checkpoint_bf16).as_posix() for p in hub.files()}
    assert isinstance(downloader.events[0], DownloadPlanned)
    assert isinstance(downloader.events[-1], DownloadFinished)
    assert [m.path for m in installed_models(downloader.models_dir)] == [model.path]


def test_progress_reports_bytes_speed_and_time_left(make, hub):
    hub.faults.chunk_delay_s = 0.01  # about 1 s for the weights: a measurable speed
    downloader = make()
    downloader.run()
    progress = of_type(downloader.events, DownloadProgress)
    total = sum(p.stat().st_size for p in hub.files())
    assert all(p.total_bytes == total for p in progress)
    done = [p.done_bytes for p in progress]
    assert done == sorted(done) and done[-1] == total
    assert progress[-1].fraction == 1.0
    measured = [p for p in progress if p.speed_bps > 0 and p.file == WEIGHTS]
    assert len(measured) > 10
    middle = measured[len(measured) // 2]
    assert 100_000 < middle.speed_bps < 50_000_000
    assert middle.eta_s == pytest.approx((total - middle.done_bytes) / middle.speed_bps)


def test_an_interrupted_transfer_resumes_where_it_stopped(make, hub):
    hub.faults.drop_after[WEIGHTS] = 700_000
    downloader = make()
    model = downloader.run()
    gets = hub.gets_of(WEIGHTS)
    assert len(gets) == 2 and gets[0].range is None
    assert 600_000 < int(gets[1].range[6:-1]) <= 700_000  # continued, not restarted
    assert of_type(downloader.events, DownloadRetrying)[0].file == WEIGHTS
    assert (model.path / WEIGHTS).stat().st_size == (hub.folder / WEIGHTS).stat().st_size


def test_a_cancelled_download_continues_in_a_later_run(make, hub):
    hub.faults.chunk_delay_s = 0.005
    first = make()

    def cancel_midway(event):
        first.events.append(event)
        if (
            isinstance(event, DownloadProgress)
            and event.file == WEIGHTS
            and event.file_bytes > 500_000
        ):
            first.cancel()

    first.on_event = cancel_midway
    with pytest.raises(DownloadCancelledError):
        first.run()
    assert isinstance(first.events[-1], DownloadCancelled)
    assert installed_models(first.models_dir) == []
    hub.faults.chunk_delay_s = 0.0
    second = make()
    assert second.plan().present_bytes > 500_000
    second.run()
    resumed = hub.gets_of(WEIGHTS)[-1]
    assert resumed.range is not None and int(resumed.range[6:-1]) > 500_000
    assert len(installed_models(second.models_dir)) == 1


def test_a_corrupt_file_is_detected_fetched_again_and_reported(make, hub):
    hub.faults.corrupt.add(WEIGHTS)
    downloader = make()
    with pytest.raises(ChecksumMismatch, match=WEIGHTS):
        downloader.run()
    assert len(hub.gets_of(WEIGHTS)) == 2  # one retry, then the error
    assert not (downloader.dest / WEIGHTS).exists()
    assert WEIGHTS in of_type(downloader.events, DownloadFailed)[0].message
    assert installed_models(downloader.models_dir) == []


def test_a_corrupt_small_file_is_caught_by_its_git_blob_id(make, hub):
    hub.faults.corrupt.add("tokenizer.json")
    with pytest.raises(ChecksumMismatch, match="tokenizer.json"):
        make(checksum_retries=0).run()


def test_a_stall_is_reported_and_the_transfer_resumed(make, hub):
    hub.faults.stall_after[WEIGHTS] = 300_000
    downloader = make(stall_timeout_s=0.3)
    model = downloader.run()
    stalls = of_type(downloader.events, DownloadStalled)
    assert [(s.file, s.seconds) for s in stalls] == [(WEIGHTS, 0.3)]
    assert hub.gets_of(WEIGHTS)[-1].range == "bytes=300000-"
    assert (model.path / WEIGHTS).read_bytes() == (hub.folder / WEIGHTS).read_bytes()


def test_a_server_that_stays_silent_fails_after_bounded_retries(make, hub):
    hub.faults.stall_every.add(WEIGHTS)
    downloader = make(stall_timeout_s=0.2, max_retries=2)
    with pytest.raises(StalledError, match="no data"):
        downloader.run()
    assert len(hub.gets_of(WEIGHTS)) == 3
    assert len(of_type(downloader.events, DownloadStalled)) == 3


def test_cancel_wakes_a_transfer_waiting_on_a_silent_server(make, hub):
    hub.faults.stall_every.add(WEIGHTS)
    downloader = make(stall_timeout_s=30.0)
    timer = threading.Timer(0.5, downloader.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(DownloadCancelledError):
        downloader.run()
    timer.join()
    assert time.monotonic() - started < 5.0


def test_transient_server_errors_are_retried(make, hub):
    hub.faults.fail_with["config.json"] = [503, 502]
    downloader = make()
    downloader.run()
    retries = of_type(downloader.events, DownloadRetrying)
    assert [(r.file, r.reason) for r in retries] == [
        ("config.json", "HTTP 503"),
        ("config.json", "HTTP 502"),
    ]


def test_a_second_run_fetches_nothing_again(make, hub):
    make().run()
    before = len(hub.gets_of(WEIGHTS))
    again = make()
    assert again.plan().remaining_bytes == 0
    again.run()
    assert len(hub.gets_of(WEIGHTS)) == before


def test_disk_space_is_checked_before_any_file_is_fetched(make, hub, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(InsufficientDiskSpace, match="disk space"):
        make().run()
    assert not [e for e in hub.log if "/resolve/" in e.path]


def test_offline_mode_makes_no_connection(make, hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineModeError, match="HF_HUB_OFFLINE"):
        make().run()
    assert hub.log == []


def test_a_gated_repo_says_how_to_get_access(tiny_checkpoint_bf16, online, tmp_path):
    with FakeHub(tiny_checkpoint_bf16, gated=True) as gated:
        downloader = ModelDownloader(gated.repo_id, tmp_path, endpoint=gated.endpoint, token=False)
        with pytest.raises(AccessDenied, match="hf auth login"):
            downloader.run()


def test_an_unknown_repo_is_reported_by_name(hub, tmp_path):
    downloader = ModelDownloader("nobody/nothing", tmp_path, endpoint=hub.endpoint, token=False)
    with pytest.raises(dl.DownloadError, match="nobody/nothing was not found"):
        downloader.run()


@pytest.mark.parametrize(
    "hostile",
    ["../../escaped.json", "/tmp/absolute.json", "sub/../../x.json", "..\\x.json", "C:/x.json"],
)
def test_a_listing_with_a_path_outside_the_model_folder_is_refused_and_nothing_is_written(
    make, hub, monkeypatch, tmp_path, hostile
):
    listed = hub.tree()
    monkeypatch.setattr(
        hub, "tree", lambda repo_id=None: [*listed, {**listed[0], "path": hostile, "type": "file"}]
    )
    downloader = make()
    with pytest.raises(dl.UnsafePathError, match="plain path|outside"):
        downloader.run()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p for p in written if "models" not in p.relative_to(tmp_path).parts] == []
    assert not [p for p in written if p.suffix == ".json" and p.name != "state.json"]
    assert not hub.gets_of(hostile.rsplit("/", 1)[-1])


def test_a_listed_name_resolving_through_a_link_outside_the_folder_is_refused(tmp_path):
    dest = tmp_path / "models" / "m"
    dest.mkdir(parents=True)
    (dest / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(dl.UnsafePathError, match="outside"):
        dl.check_repo_path("link/config.json", dest)
    assert dl.check_repo_path("sub/config.json", dest) == "sub/config.json"
