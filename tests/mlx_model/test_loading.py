"""load_model: a checkpoint folder in the Hugging Face layout -> the MLX model, read lazily."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

import mlx_model
from mlx_model.loading import load_model


def random_prompt(folder: Path, length: int = 24, seed: int = 0) -> mx.array:
    vocab = json.loads((folder / "config.json").read_text())["text_config"]["vocab_size"]
    rng = np.random.default_rng(seed)
    return mx.array(rng.integers(0, vocab, size=(1, length)))


def float_dtypes(model) -> set:
    return {
        v.dtype for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating)
    }


def test_load_model_is_the_package_export():
    assert mlx_model.load_model is load_model


def test_float32_checkpoint_loads_with_float32_weights(tiny_checkpoint):
    assert float_dtypes(load_model(tiny_checkpoint)) == {mx.float32}


def test_bf16_checkpoint_keeps_its_bf16_weights(tiny_checkpoint_bf16):
    model = load_model(tiny_checkpoint_bf16)
    assert float_dtypes(model) == {mx.bfloat16}
    assert model(input_ids=random_prompt(tiny_checkpoint_bf16)).dtype == mx.bfloat16


def test_dtype_argument_casts_the_float_weights(tiny_checkpoint):
    assert float_dtypes(load_model(tiny_checkpoint, dtype="bfloat16")) == {mx.bfloat16}


def test_sharded_checkpoint_gives_the_same_logits_as_a_single_file(
    tiny_checkpoint, tiny_checkpoint_sharded
):
    prompt = random_prompt(tiny_checkpoint)
    single = load_model(tiny_checkpoint)(input_ids=prompt)
    sharded = load_model(tiny_checkpoint_sharded)(input_ids=prompt)
    assert mx.array_equal(single, sharded)


def test_shards_without_an_index_are_found_by_name(tiny_checkpoint_sharded, tmp_path):
    import shutil

    folder = Path(shutil.copytree(tiny_checkpoint_sharded, tmp_path / "ck"))
    (folder / "model.safetensors.index.json").unlink()
    prompt = random_prompt(folder)
    expected = load_model(tiny_checkpoint_sharded)(input_ids=prompt)
    assert mx.array_equal(load_model(folder)(input_ids=prompt), expected)


def test_lazy_load_reads_no_weights_until_they_are_used(tiny_checkpoint):
    mx.clear_cache()
    before = mx.get_active_memory()
    model = load_model(tiny_checkpoint, lazy=True)
    lazy_growth = mx.get_active_memory() - before
    weight_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    mx.eval(model.parameters())
    eager_growth = mx.get_active_memory() - before
    assert lazy_growth < weight_bytes / 10
    assert eager_growth >= weight_bytes


def test_lazy_false_reads_every_weight_at_load(tiny_checkpoint):
    before = mx.get_active_memory()
    model = load_model(tiny_checkpoint, lazy=False)
    weight_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    assert mx.get_active_memory() - before >= weight_bytes


def test_loaded_model_continues_from_its_cache(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    prompt = random_prompt(tiny_checkpoint, length=12)
    full = model(input_ids=prompt)
    cache = model.make_cache()
    model(input_ids=prompt[:, :-1], cache=cache)
    step = model(input_ids=prompt[:, -1:], cache=cache)
    assert mx.allclose(step[:, -1], full[:, -1], atol=1e-4, rtol=1e-4)
