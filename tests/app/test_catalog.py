"""The model catalog, size estimates, and local model folders (validate, import, list)."""

from __future__ import annotations

import contextlib
import json
import shutil

import numpy as np
import pytest

from app.models.catalog import (
    GEMMA_4_12B_IT,
    builtin_entries,
    entry_for_repo,
    estimate_from_folder,
    estimate_with_memory_plan,
    find_entry,
    memory_plan_for,
    quantized_bytes,
)
from app.models.local import (
    InvalidModelFolder,
    forget_import,
    import_folder,
    installed_models,
    validate_folder,
)
from tests.app.hub_server import FakeHub, go_online


@pytest.fixture
def online_hub_for(monkeypatch):
    """Serve a folder from a FakeHub on 127.0.0.1 for the rest of the test."""
    go_online(monkeypatch)
    with contextlib.ExitStack() as stack:
        yield lambda folder: stack.enter_context(FakeHub(folder))


@pytest.fixture
def folder(tiny_checkpoint, tmp_path):
    """A writable copy of the tiny float32 checkpoint."""
    return shutil.copytree(tiny_checkpoint, tmp_path / "tiny")


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


# ---------------------------------------------------------------- catalog


def test_the_catalog_offers_gemma_4_12b_quantized_to_4_bits_on_load():
    assert builtin_entries() == [GEMMA_4_12B_IT]
    entry = find_entry("google/gemma-4-12B-it")
    assert entry is GEMMA_4_12B_IT and find_entry("gemma-4-12b-it") is entry
    assert entry.stored_bits is None and entry.load_bits == 4 and entry.effective_bits == 4
    assert entry.folder_name == "google--gemma-4-12B-it"
    assert entry.with_load_bits(8).effective_bits == 8


@pytest.mark.parametrize("bits", [4, 8])
def test_a_prequantized_mlx_conversion_is_recognised_from_its_config(bits):
    config = {"model_type": "gemma4_unified", "quantization": {"bits": bits, "group_size": 32}}
    entry = entry_for_repo("someone/gemma-4-12b-it-mlx", config)
    assert entry.is_prequantized and entry.stored_bits == bits
    assert entry.load_bits is None and entry.effective_bits == bits
    assert entry.group_size == 32
    assert f"{bits}-bit" in entry.name


def test_a_repo_with_original_weights_is_quantized_on_load():
    entry = entry_for_repo("someone/gemma-finetune", {"model_type": "gemma4_unified"})
    assert not entry.is_prequantized and entry.load_bits == 4


def test_the_config_of_a_hub_repo_tells_its_precision(folder, online_hub_for):
    from app.models.download import fetch_config

    edit_config(folder, quantization={"bits": 8, "group_size": 64})
    hub = online_hub_for(folder)
    config = fetch_config(hub.repo_id, endpoint=hub.endpoint, token=False)
    assert entry_for_repo(hub.repo_id, config).stored_bits == 8


# ---------------------------------------------------------------- sizes


def test_the_size_estimate_counts_parameters_from_the_safetensors_headers(tiny_checkpoint):
    from safetensors.numpy import load_file

    expected = sum(a.size for a in load_file(str(tiny_checkpoint / "model.safetensors")).values())
    estimate = estimate_from_folder(tiny_checkpoint)
    assert estimate.parameters == expected
    assert estimate.stored_bytes == (tiny_checkpoint / "model.safetensors").stat().st_size
    assert estimate.at(None) == 2 * expected
    assert estimate.at(4) == quantized_bytes(expected, 4) < estimate.at(8) < estimate.at(None)


def test_quantized_size_includes_the_scales_and_biases():
    # 4 bits per weight plus an fp16 scale and bias per group of 64 = 4.5 bits.
    assert quantized_bytes(64 * 1000, 4, 64) == 64 * 1000 * 4.5 / 8
    assert quantized_bytes(1000, None) == 2000


def test_the_memory_plan_estimate_of_a_folder_matches_its_weights(tiny_checkpoint):
    entry = entry_for_repo("tests/tiny", json.loads((tiny_checkpoint / "config.json").read_text()))
    planned = estimate_with_memory_plan(entry, tiny_checkpoint)
    counted = estimate_from_folder(tiny_checkpoint)
    assert planned.parameters == pytest.approx(counted.parameters, rel=0.01)
    assert planned.at(4) < planned.at(8) < planned.at(None)


def test_the_12b_in_4_bits_is_estimated_from_its_config_at_about_7_gb():
    estimate = estimate_with_memory_plan(GEMMA_4_12B_IT)
    assert 5e9 < estimate.at(4) < 8e9  # DESIGN.md: "The 12B in 4-bit (~7 GB)"
    assert estimate.at(4) < estimate.at(8) < estimate.at(None)


def test_a_memory_plan_is_available_before_loading(tiny_checkpoint):
    entry = entry_for_repo("tests/tiny", {})
    plan = memory_plan_for(entry, tiny_checkpoint, context_length=256)
    assert plan.bits == 4 and plan.context_length == 256
    assert plan.total_bytes > 0 and isinstance(plan.fits, bool)


# ---------------------------------------------------------------- local folders


def test_a_checkpoint_folder_is_validated_and_described(tiny_checkpoint):
    model = validate_folder(tiny_checkpoint)
    assert model.model_type == "gemma4_unified"
    assert model.stored_bits is None
    assert model.weight_files == ("model.safetensors",)


def test_a_sharded_checkpoint_lists_every_shard(tiny_checkpoint_sharded):
    index = json.loads((tiny_checkpoint_sharded / "model.safetensors.index.json").read_text())
    model = validate_folder(tiny_checkpoint_sharded)
    assert model.weight_files == tuple(sorted(set(index["weight_map"].values())))
    assert len(model.weight_files) == 3


def test_a_missing_shard_is_named(tiny_checkpoint_sharded, tmp_path):
    copy = shutil.copytree(tiny_checkpoint_sharded, tmp_path / "sharded")
    victim = validate_folder(copy).weight_files[1]
    (copy / victim).unlink()
    with pytest.raises(InvalidModelFolder, match=victim):
        validate_folder(copy)


@pytest.mark.parametrize("keep", [3, 100, -1000])
def test_a_truncated_weight_file_is_reported_damaged(folder, keep):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:keep])
    with pytest.raises(InvalidModelFolder, match="damaged or incomplete"):
        validate_folder(folder)


def test_another_kind_of_model_is_refused_by_name(folder):
    edit_config(folder, model_type="llama")
    with pytest.raises(InvalidModelFolder, match="'llama'"):
        validate_folder(folder)


def test_a_folder_without_a_tokenizer_is_refused(folder):
    (folder / "tokenizer.json").unlink()
    with pytest.raises(InvalidModelFolder, match="no tokenizer"):
        validate_folder(folder)


def test_a_folder_imported_by_reference_is_listed_until_forgotten(folder, tmp_path):
    models_dir = tmp_path / "models"
    model = import_folder(folder, models_dir)
    assert [m.path for m in installed_models(models_dir)] == [model.path]
    forget_import(folder, models_dir)
    assert installed_models(models_dir) == []
    assert folder.is_dir()  # the user's folder is left alone


def test_a_folder_imported_by_copy_lives_in_the_models_folder(folder, tmp_path):
    models_dir = tmp_path / "models"
    model = import_folder(folder, models_dir, copy=True)
    assert model.path == (models_dir / folder.name).resolve()
    a = (folder / "model.safetensors").read_bytes()
    assert a == (model.path / "model.safetensors").read_bytes()
    assert [m.path for m in installed_models(models_dir)] == [model.path]


def test_an_invalid_folder_is_not_imported(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModelFolder, match="no config.json"):
        import_folder(tmp_path / "empty", tmp_path / "models")
    assert installed_models(tmp_path / "models") == []


def test_an_unfinished_download_is_not_listed_as_installed(folder, tmp_path):
    models_dir = tmp_path / "models"
    target = shutil.copytree(folder, models_dir / "owner--tiny")
    (target / ".download").mkdir()
    assert installed_models(models_dir) == []
    (target / ".download" / "complete.json").write_text(json.dumps({"repo_id": "owner/tiny"}))
    [model] = installed_models(models_dir)
    assert model.repo_id == "owner/tiny" and model.name == "owner/tiny"


def test_the_estimate_of_a_prequantized_folder_counts_packed_weights(folder):
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    name, matrix = next((k, v) for k, v in weights.items() if v.ndim == 2 and v.shape[1] % 64 == 0)
    rows, cols = matrix.shape
    weights[name] = np.zeros((rows, cols // 8), np.uint32)  # 4-bit: 8 values per uint32
    weights[name.replace(".weight", ".scales")] = np.zeros((rows, cols // 64), np.float16)
    weights[name.replace(".weight", ".biases")] = np.zeros((rows, cols // 64), np.float16)
    save_file(weights, str(folder / "model.safetensors"))
    edit_config(folder, quantization={"bits": 4, "group_size": 64})
    assert estimate_from_folder(folder).parameters == sum(
        v.size for k, v in load_file(str(folder / "model.safetensors")).items()
        if not k.endswith((".scales", ".biases")) and k != name
    ) + rows * cols  # fmt: skip
