"""Memory-bounded attention: key blocks with the online softmax give the plain path's results."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.attention import (
    AttentionMask,
    AttentionOptions,
    attention,
    attention_path,
    blocked_attention,
    key_blocks,
    mlx_fused_kernel,
)

# name -> AttentionMask fields (besides blocks); blocks are given per case below.
MASK_CASES = {
    "causal_full_layer_after_a_past": dict(q_start=40, length=24, k_start=0),
    "sliding_window_with_rotating_past": dict(q_start=40, length=24, k_start=25, window=16),
    "image_block_all_layers_full": dict(q_start=40, length=24, k_start=0, overlay="or"),
    "image_block_all_layers_sliding": dict(
        q_start=40, length=24, k_start=25, window=16, overlay="or"
    ),
    "image_block_longer_than_the_window_googles_sliding": dict(
        q_start=40, length=24, k_start=25, window=8, window_ahead=True, overlay="within_window"
    ),
    "first_chunk_sliding_window": dict(q_start=0, length=30, k_start=0, window=8),
}
# (heads, kv heads, head dim): grouped-query and multi-query (the 12B's full layers: 16/1)
HEAD_CASES = [(8, 2, 32), (16, 1, 64)]


def _blocks_for(case: dict) -> np.ndarray | None:
    if case.get("overlay") is None:
        return None
    ids = np.full((1, case["length"]), -1, np.int32)
    ids[0, 3:17] = 0  # a 14-token image inside the chunk
    ids[0, 19:22] = 1  # and a second, short one
    return ids


def _reference_visible(case: dict, blocks: np.ndarray | None) -> np.ndarray:
    """The masks as docs/MODEL.md defines them, written out independently (numpy)."""
    q = np.arange(case["q_start"], case["q_start"] + case["length"])[:, None]
    k = np.arange(case["k_start"], case["q_start"] + case["length"])[None]
    window = case.get("window")
    causal = k <= q
    lower = k > q - window if window else np.ones_like(causal)
    same = np.zeros_like(causal)
    if blocks is not None:
        past = case["q_start"] - case["k_start"]
        ids = np.concatenate([np.full(past, -1), blocks[0]])
        same = (blocks[0][:, None] == ids[None]) & (blocks[0][:, None] >= 0)
    overlay = case.get("overlay")
    if overlay == "within_window":
        upper = k < q + window if case.get("window_ahead") else np.ones_like(causal)
        return (causal | same) & lower & upper
    visible = causal & lower
    return visible | same if overlay == "or" else visible


def _random_qkv(heads, kv_heads, dim, queries, keys, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(1, heads, queries, dim)) / np.sqrt(dim) * 2
    k = rng.normal(size=(1, kv_heads, keys, dim))
    v = rng.normal(size=(1, kv_heads, keys, dim))
    return q, k, v


def _attention_f64(q, k, v, visible) -> np.ndarray:
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    s = q @ k.swapaxes(-1, -2)
    s = np.where(visible, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def _rel(a, ref) -> float:
    a = np.array(a.astype(mx.float32)) if isinstance(a, mx.array) else a
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def _mask(case: dict, **options) -> AttentionMask:
    blocks = _blocks_for(case)
    return AttentionMask(
        **case,
        blocks=None if blocks is None else mx.array(blocks),
        options=AttentionOptions(**options),
    )


@pytest.mark.parametrize("heads", HEAD_CASES, ids=lambda h: f"{h[0]}q-{h[1]}kv-d{h[2]}")
@pytest.mark.parametrize("name", sorted(MASK_CASES))
def test_blocked_float32_is_as_close_to_float64_as_the_plain_path(name, heads):
    case = MASK_CASES[name]
    mask = _mask(case, mode="blocked", block=7)
    n_keys = mask.keys
    q, k, v = _random_qkv(*heads, case["length"], n_keys)
    visible = _reference_visible(case, _blocks_for(case))
    ref = _attention_f64(q, k, v, visible)
    q32, k32, v32 = (mx.array(x.astype(np.float32)) for x in (q, k, v))

    plain = mx.fast.scaled_dot_product_attention(q32, k32, v32, scale=1.0, mask=mask.whole())
    blocked = attention(q32, k32, v32, mask, scale=1.0)
    assert np.array_equal(np.array(_mask(case).block(0, n_keys)).reshape(visible.shape), visible)
    err_plain, err_blocked = _rel(plain, ref), _rel(blocked, ref)
    assert err_blocked <= 1.5 * err_plain, (err_blocked, err_plain)


@pytest.mark.parametrize("name", sorted(MASK_CASES))
def test_blocked_bfloat16_is_as_close_to_float64_as_the_plain_path(name):
    """bf16 scores and probabilities round as in MLX's unfused path; the running max, sum and
    output stay float32, so the blocked path is no less accurate (docs/MEMORY.md has figures)."""
    case = MASK_CASES[name]
    mask = _mask(case, mode="blocked", block=7)
    q, k, v = _random_qkv(16, 1, 64, case["length"], mask.keys, seed=1)
    qb, kb, vb = (mx.array(x.astype(np.float32)).astype(mx.bfloat16) for x in (q, k, v))
    ref = _attention_f64(
        *(np.array(x.astype(mx.float32)).astype(np.float64) for x in (qb, kb, vb)),
        _reference_visible(case, _blocks_for(case)),
    )
    plain = mx.fast.scaled_dot_product_attention(qb, kb, vb, scale=1.0, mask=mask.whole())
    blocked = attention(qb, kb, vb, mask, scale=1.0)
    assert blocked.dtype == mx.bfloat16
    assert _rel(blocked, ref) <= 1.5 * _rel(plain, ref)


def test_blocked_attention_reads_a_quantized_cache_like_the_plain_path():
    from mlx_lm.models.cache import QuantizedKVCache

    case = MASK_CASES["causal_full_layer_after_a_past"]
    mask = _mask(case, mode="blocked", block=16)
    q, k, v = _random_qkv(16, 1, 64, case["length"], mask.keys, seed=2)
    cache = QuantizedKVCache(group_size=64, bits=8)
    qk, qv = cache.update_and_fetch(mx.array(k, dtype=mx.float32), mx.array(v, dtype=mx.float32))
    dq = [np.array(mx.dequantize(*x, group_size=64, bits=8)).astype(np.float64) for x in (qk, qv)]
    ref = _attention_f64(q, *dq, _reference_visible(case, None))
    q32 = mx.array(q, dtype=mx.float32)
    plain = attention(q32, qk, qv, mask.whole(), cache=cache)
    blocked = attention(q32, qk, qv, mask, cache=cache)
    assert _rel(blocked, ref) <= 1.5 * _rel(plain, ref)


def test_scale_is_applied_on_the_blocked_path():
    case = MASK_CASES["causal_full_layer_after_a_past"]
    mask = _mask(case)
    q, k, v = (mx.array(x, dtype=mx.float32) for x in _random_qkv(8, 2, 32, 24, mask.keys))
    plain = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask=mask.whole())
    blocked = blocked_attention(q, k, v, mask, 5, scale=0.125)
    assert np.allclose(np.array(blocked), np.array(plain), atol=1e-5)


def test_key_blocks_start_the_chunk_anew_and_never_hold_one_key():
    assert key_blocks(11, 5, 2) == [(0, 2), (2, 5), (5, 7), (7, 9), (9, 11)]
    assert key_blocks(10, 1, 4) == [(0, 4), (4, 8), (8, 10)]  # a single past key joins
    for n, start, block in [(1000, 487, 64), (513, 512, 128), (4097, 0, 2048)]:
        bounds = key_blocks(n, start, block)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert all(2 <= hi - lo <= block + 1 for lo, hi in bounds)


def test_blocks_of_past_keys_of_a_causal_full_layer_need_no_mask():
    mask = _mask(MASK_CASES["causal_full_layer_after_a_past"])
    assert mask.block(0, 40) is None  # every query sees every past key
    assert mask.block(40, 64) is not None
    window = _mask(MASK_CASES["sliding_window_with_rotating_past"])
    assert window.block(0, 15) is not None  # later queries' windows exclude early past keys


# --------------------------------------------------------------------------- which path runs

TWELVE_B_FULL = dict(heads=16, kv_heads=1, head_dim=512, dtype_bytes=2)
TWELVE_B_SLIDING = dict(heads=16, kv_heads=8, head_dim=256, dtype_bytes=2)


def test_12b_full_layers_have_no_fused_metal_kernel_and_run_in_key_blocks_at_256k():
    assert not mlx_fused_kernel("metal", 512, 512, 262_144, 16, 1)
    assert not mlx_fused_kernel("metal", 512, 1, 262_144, 16, 1)  # decode: unfused too
    path = attention_path(
        backend="metal", queries=512, keys=262_144, array_mask=False, **TWELVE_B_FULL
    )
    assert path.kind == "blocked" and not path.scores_materialized
    assert path.temp_bytes <= AttentionOptions().budget_bytes
    whole = 16 * 512 * 262_144 * 2
    assert whole > 4e9  # what the unfused path would materialize: 4.3 GB per layer


def test_12b_sliding_layers_stay_on_mlx_unfused_path_bounded_by_the_window():
    path = attention_path(
        backend="metal", queries=512, keys=1023 + 512, array_mask=True, **TWELVE_B_SLIDING
    )
    assert path.kind == "plain" and path.scores_materialized  # head dim 256: MLX's choice
    assert path.temp_bytes <= AttentionOptions().budget_bytes


def test_metal_fused_head_dims_skip_materializing_and_cpu_never_has_a_fused_kernel():
    for d in (64, 128):
        assert mlx_fused_kernel("metal", d, 512, 8192, 16, 8)
        assert attention_path(
            backend="metal", heads=16, kv_heads=8, head_dim=d, queries=512, keys=8192,
            dtype_bytes=2, array_mask=False,
        ).kind == "fused"  # fmt: skip
    assert mlx_fused_kernel("metal", 256, 1, 8192, 16, 8)  # decode vector kernel
    assert not mlx_fused_kernel("metal", 256, 512, 8192, 16, 8)  # MLX routes 256 unfused
    assert not mlx_fused_kernel("cpu", 128, 512, 8192, 16, 8)


def test_budget_decides_between_the_plain_path_and_key_blocks():
    kw = dict(backend="cpu", heads=16, kv_heads=1, head_dim=128, queries=512, dtype_bytes=4)
    small = attention_path(keys=1024, array_mask=False, **kw)
    assert small.kind == "plain"
    big = attention_path(keys=32_768, array_mask=False, **kw)
    assert big.kind == "blocked"
    assert big.temp_bytes <= AttentionOptions().budget_bytes
    assert big.block % 64 == 0
    tight = attention_path(
        keys=32_768, array_mask=False, options=AttentionOptions(budget_bytes=16 << 20), **kw
    )
    assert tight.block < big.block
