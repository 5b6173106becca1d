"""Fixtures for the app tests: a throw-away data folder, opened storage, and a scripted fake engine.

The fake engine exists for the few tests that need a deterministic failure or exact
timing; the engine-service and controller tests also run against the real
`mlx_model.engine.Engine` with the tiny checkpoint from tests/conftest.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.storage import Storage, open_storage
from mlx_model.events import Finished, GenerationError, GenerationStats, TextDelta, ThinkingDelta


@pytest.fixture(autouse=True)
def _isolated_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real user's config or data folders."""
    monkeypatch.setenv("GEMMA_DESK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GEMMA_DESK_DATA_DIR", raising=False)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with open_storage(tmp_path / "data") as s:
        yield s


class FakeEngine:
    """Streams `words` as `TextDelta`s, `delay` seconds apart; cancellable like the real one.

    `fail_after`: raise RuntimeError after that many words; `error_event`: end with a
    `GenerationError` instead of `Finished`.
    """

    def __init__(
        self,
        path: str,
        *,
        words: list[str] | None = None,
        delay: float = 0.0,
        fail_after: int | None = None,
        error_event: bool = False,
        thinking: str = "",
        **options: Any,
    ) -> None:
        self.path = path
        self.words = words if words is not None else [f"w{i} " for i in range(5)]
        self.delay = delay
        self.fail_after = fail_after
        self.error_event = error_event
        self.thinking = thinking
        self.options = options
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        self.thread_ids: set[int] = set()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def close(self) -> None:
        self.closed = True

    def stream(self, messages: list[dict[str, Any]], **kwargs: Any):
        self._cancel.clear()
        self.thread_ids.add(threading.get_ident())
        self.calls.append({"messages": messages, **kwargs})
        if self.thinking:
            yield ThinkingDelta(self.thinking)
        count = 0
        for i, word in enumerate(self.words):
            if self._cancel.is_set():
                yield Finished(GenerationStats(generated_tokens=count, stop_reason="cancelled"))
                return
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("fake engine exploded")
            if self.delay:
                time.sleep(self.delay)
            count += 1
            yield TextDelta(word)
        if self.error_event:
            yield GenerationError(
                "context_overflow", "The conversation is too long for the context."
            )
            return
        yield Finished(GenerationStats(generated_tokens=count, stop_reason="eos"))


def fake_factory(**defaults: Any):
    """An engine factory making `FakeEngine`s; `factory.engines` lists those it made."""
    engines: list[FakeEngine] = []

    def factory(path: str, **options: Any) -> FakeEngine:
        if "missing" in str(path):
            raise FileNotFoundError(f"No checkpoint at {path}")
        engine = FakeEngine(path, **{**defaults, **options})
        engines.append(engine)
        return engine

    factory.engines = engines  # type: ignore[attr-defined]
    return factory


@pytest.fixture
def tiny_engine_options() -> dict[str, Any]:
    """Generation options that keep the real tiny model fast and deterministic."""
    return {"temperature": 0.0}


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
