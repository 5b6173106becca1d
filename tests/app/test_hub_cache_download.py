"""Downloads into the Hugging Face cache layout, against the fake hub on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from app.models.download import DownloadProgress
from app.models.hub_download import HubCacheDownloader
from app.models.local import cached_models
from mlx_model.hub import resolve_checkpoint
from tests.app.hub_server import COMMIT, FakeHub, go_online

WEIGHTS = "model.safetensors"


@pytest.fixture
def hub(tiny_checkpoint_bf16, monkeypatch):
    go_online(monkeypatch)
    with FakeHub(tiny_checkpoint_bf16) as server:
        yield server


def downloader(hub, cache, **overrides) -> HubCacheDownloader:
    options = dict(
        endpoint=hub.endpoint, token=False, chunk_size=16_384, progress_interval_s=0.0,
        retry_backoff_s=0.01, stall_timeout_s=0.5, disk_margin_bytes=0,
    )  # fmt: skip
    options.update(overrides)
    return HubCacheDownloader(hub.repo_id, cache, **options)


def test_files_land_as_content_addressed_blobs_linked_from_the_snapshot(
    hub, hub_cache, tiny_checkpoint_bf16
):
    model = downloader(hub, hub_cache).run()
    storage = hub_cache / ("models--" + hub.repo_id.replace("/", "--"))
    assert model.path == (storage / "snapshots" / COMMIT).resolve()
    assert (storage / "refs" / "main").read_text() == COMMIT
    for source in hub.files():
        linked = model.path / source.relative_to(tiny_checkpoint_bf16)
        assert linked.is_symlink() and not os.path.isabs(os.readlink(linked))
        assert linked.resolve().parent == storage / "blobs"
        assert linked.read_bytes() == source.read_bytes()
    assert model.repo_id == hub.repo_id
    assert resolve_checkpoint(hub.repo_id) == storage / "snapshots" / COMMIT
    assert [m.repo_id for m in cached_models()] == [hub.repo_id]


def test_a_dropped_transfer_resumes_from_the_incomplete_blob(hub, hub_cache):
    hub.faults.drop_after[WEIGHTS] = 700_000
    downloader(hub, hub_cache).run()
    gets = hub.gets_of(WEIGHTS)
    assert len(gets) == 2 and 600_000 < int(gets[1].range[6:-1]) <= 700_000


def test_a_cancelled_download_resumes_in_a_later_run(hub, hub_cache):
    hub.faults.chunk_delay_s = 0.005
    first = None

    def cancel_midway(event):
        if (
            isinstance(event, DownloadProgress)
            and event.file == WEIGHTS
            and event.file_bytes > 300_000
        ):
            first.cancel()

    first = downloader(hub, hub_cache, on_event=cancel_midway)
    with pytest.raises(Exception, match="cancelled"):
        first.run()
    hub.faults.chunk_delay_s = 0.0
    downloader(hub, hub_cache).run()
    resumed = hub.gets_of(WEIGHTS)[-1]
    assert resumed.range is not None and int(resumed.range[6:-1]) > 300_000


def test_blobs_already_in_the_cache_are_linked_not_fetched(hub, hub_cache):
    downloader(hub, hub_cache).run()
    before = len(hub.gets_of(WEIGHTS))
    storage = hub_cache / ("models--" + hub.repo_id.replace("/", "--"))
    (storage / "snapshots" / COMMIT / WEIGHTS).unlink()
    model = downloader(hub, hub_cache).run()
    assert len(hub.gets_of(WEIGHTS)) == before
    assert (model.path / WEIGHTS).is_file()
