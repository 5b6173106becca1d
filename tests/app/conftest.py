"""Fixtures for the app tests: a throw-away data folder and opened storage.

The engine doubles are in tests/doubles.py: the fake engine exists for the few tests that
need a deterministic failure or exact timing; the engine-service and controller tests
also run against the real local engine with the tiny checkpoint from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.options import GenerationOptions
from app.storage import Storage, open_storage


@pytest.fixture(autouse=True)
def _isolated_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real user's config or data folders."""
    monkeypatch.setenv("GEMMA_DESK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GEMMA_DESK_DATA_DIR", raising=False)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with open_storage(tmp_path / "data") as s:
        yield s


@pytest.fixture
def greedy() -> GenerationOptions:
    """Generation options that keep the real tiny model fast and deterministic."""
    return GenerationOptions(temperature=0.0, max_tokens=8)


def put_in_hub_cache(folder: Path, cache: Path, repo_id: str, commit: str = "a" * 40) -> Path:
    """Lay `folder` out as huggingface_hub caches a download (blobs, snapshot links, refs/main)."""
    import hashlib
    import os

    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(folder.iterdir()):
        if not file.is_file():
            continue
        blob = storage / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache that huggingface_hub and `mlx_model.hub` use for this test."""
    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return cache


# -- long inputs: generated once per session ------------------------------------------------


@pytest.fixture(scope="session")
def spoken_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-minute WAV at espeak-ng's own rate (22.05 kHz): sentences with pauses, repeated."""
    from tests.app.recording_sources import write_spoken_recording

    return write_spoken_recording(tmp_path_factory.mktemp("speech") / "meeting.wav", 600.0)


@pytest.fixture(scope="session")
def five_minute_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-minute video with sound (2 fps; each frame's brightness encodes its second)."""
    from tests.app.recording_sources import write_tone_video

    return write_tone_video(tmp_path_factory.mktemp("video") / "demo.mkv", 300.0, fps=2)


@pytest.fixture(scope="session")
def long_pdf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """A 300-page PDF with one planted fact: (path, its page, the fact)."""
    import random

    from tests.app.document_sources import filler, write_pdf

    rng = random.Random(7)
    fact_page = 217
    fact = "The vault access code for the Nightingale project is 4471."
    pages = []
    for number in range(1, 301):
        text = filler(rng)
        if number == fact_page:
            text += "\n" + fact
        pages.append(f"Page {number}\n{text}")
    path = tmp_path_factory.mktemp("pdf") / "manual.pdf"
    return write_pdf(path, pages), fact_page, fact
