"""The memory plan against measurement: prefill peak memory on the CPU backend.

The CPU backend materializes attention scores for every head dim (as Metal does for the 12B's
head dim 512), so it shows what the key blocks save. What the plan predicts is
`MemoryPlan.mlx_peak_bytes`: MLX's peak active memory (`mx.get_peak_memory()`) counted from
before the weights load, i.e. weights + KV cache + working headroom without the runtime reserve.

A full 8K prefill of a 16-head, head-dim-128 model takes minutes with the CPU backend's
reference BLAS, so the cache is filled with random keys and values up to the last two chunks
and only those run through the network. That is where the peak is: the last chunks attend to
the most keys, and the first of them grows the full layer's cache (mlx-lm copies it then).
"""

from __future__ import annotations

import gc

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.attention import AttentionOptions
from mlx_model.config import read_checkpoint_config
from mlx_model.loading import load_model
from mlx_model.memory_plan import plan_memory

from .conftest import prefill_inputs

CHUNK = 128
CONTEXTS = (2048, 8192)
BUDGET = AttentionOptions(budget_bytes=16 << 20)  # both contexts exceed it on the plain path
PLAIN = AttentionOptions(mode="plain")


def _peak_of_last_chunks(folder, options, context: int, chunks: int) -> int:
    """MLX peak memory, from before loading, of prefilling the last `chunks` chunks of a
    `context`-token prompt (the cache holds random keys/values for the rest)."""
    gc.collect()
    mx.clear_cache()
    base = mx.get_active_memory()
    model = load_model(folder, lazy=False)
    model.attention_options = options
    cache = model.make_cache()
    filled = context - chunks * CHUNK
    for c, spec in zip(cache, model.config.text_config.layers, strict=True):
        shape = (1, spec.num_key_value_heads, filled, spec.head_dim)
        c.update_and_fetch(mx.random.normal(shape), mx.random.normal(shape))
    mx.eval([c.state for c in cache])
    mx.reset_peak_memory()
    rng = np.random.default_rng(context)
    ids = mx.array(rng.integers(32, 600, size=(1, chunks * CHUNK)), dtype=mx.int32)
    mx.eval(prefill_inputs(model, {"input_ids": ids}, cache, CHUNK)[1])
    assert all(c.offset == context for c in cache)
    peak = mx.get_peak_memory() - base
    del model, cache
    gc.collect()
    mx.clear_cache()
    return peak


@pytest.fixture(scope="module")
def measured(wide_checkpoint):
    """Peaks of our path (key blocks past the budget) and of MLX's plain path, with plans."""
    config, dtype_bytes, _ = read_checkpoint_config(wide_checkpoint)
    out = {}
    for context in CONTEXTS:
        out["plan", context] = plan_memory(
            config,
            bits=None,
            context_length=context,
            dtype_bytes=dtype_bytes,
            prefill_chunk=CHUNK,
            device_budget_bytes=10**12,
            backend="cpu",
            attention_options=BUDGET,
        )
        out["ours", context] = _peak_of_last_chunks(wide_checkpoint, BUDGET, context, 2)
        # the plain path's growth shows in one chunk (no cache growth in it: a lower bound)
        out["plain", context] = _peak_of_last_chunks(wide_checkpoint, PLAIN, context, 1)
    return out


@pytest.mark.parametrize("context", CONTEXTS)
def test_prefill_peak_memory_is_what_the_plan_predicts(measured, context):
    plan = measured["plan", context]
    assert all(a.path.kind == "blocked" for a in plan.attention if a.head_dim == 128)
    assert measured["ours", context] == pytest.approx(plan.mlx_peak_bytes, rel=0.15)


def test_peak_memory_grows_with_the_kv_cache_only(measured):
    small, large = CONTEXTS
    grown = measured["ours", large] - measured["ours", small]
    plan_small, plan_large = measured["plan", small], measured["plan", large]
    # the cache and the copy mlx-lm makes of one full layer's cache when it grows
    kv = (plan_large.kv_bytes + plan_large.breakdown["headroom.kv_growth"]) - (
        plan_small.kv_bytes + plan_small.breakdown["headroom.kv_growth"]
    )
    assert plan_large.breakdown["headroom.attention"] == plan_small.breakdown["headroom.attention"]
    assert grown == pytest.approx(kv, rel=0.15)
    # MLX's plain path also materializes heads x chunk x keys float32 scores per full layer
    plain_grown = measured["plain", large] - measured["plain", small]
    scores_grown = 16 * CHUNK * (large - small) * 4
    assert plain_grown > grown + 0.8 * scores_grown
