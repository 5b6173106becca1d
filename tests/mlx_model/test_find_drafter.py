"""Finding a model's speculative drafter: beside its folder, as `<repo>-assistant` in the
Hugging Face cache, or any cached drafter made for a model of its shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlx_model.hub import drafter_repo, find_drafter

TARGET = {"model_type": "gemma4_unified", "text_config": {"hidden_size": 64, "vocab_size": 640}}


def _drafter(backbone: int = 64, vocab: int = 640) -> dict:
    return {
        "model_type": "gemma4_unified_assistant",
        "backbone_hidden_size": backbone,
        "text_config": {"hidden_size": 32, "vocab_size": vocab},
    }


def _folder(path: Path, config: dict) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _cached(cache: Path, repo_id: str, config: dict) -> Path:
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = _folder(storage / "snapshots" / ("c" * 40), config)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("c" * 40)
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_the_folder_beside_the_model_is_found(tmp_path, cache):
    model = _folder(tmp_path / "gemma-4-12B-it", TARGET)
    drafter = _folder(tmp_path / "gemma-4-12B-it-assistant", _drafter())
    assert find_drafter(model) == drafter.resolve()


def test_a_folder_beside_it_that_is_no_drafter_is_ignored(tmp_path, cache):
    model = _folder(tmp_path / "m", TARGET)
    _folder(tmp_path / "m-assistant", TARGET)
    assert find_drafter(model) is None


def test_the_repos_assistant_in_the_cache_is_found_for_a_cached_model(cache):
    assert drafter_repo("google/gemma-4-12B-it") == "google/gemma-4-12B-it-assistant"
    model = _cached(cache, "google/gemma-4-12B-it", TARGET)
    # its config would not match: the name decides
    drafter = _cached(cache, "google/gemma-4-12B-it-assistant", _drafter(backbone=99))
    assert find_drafter(model) == drafter
    assert find_drafter("google/gemma-4-12B-it") == drafter


def test_a_cached_drafter_made_for_a_model_of_this_shape_is_found(tmp_path, cache):
    model = _folder(tmp_path / "my-4bit-conversion", TARGET)
    _cached(cache, "someone/other-size-assistant", _drafter(backbone=128))
    fitting = _cached(cache, "google/gemma-4-12B-it-assistant", _drafter())
    assert find_drafter(model) == fitting


def test_no_drafter_anywhere_is_none(tmp_path, cache):
    model = _folder(tmp_path / "m", TARGET)
    _cached(cache, "someone/other-size-assistant", _drafter(vocab=1000))
    assert find_drafter(model) is None
