"""KV caches, incremental decoding and chunked prefill of the MLX network."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.cache import (
    KVCache,
    QuantizedKVCache,
    ReservableKVCache,
    ReservableQuantizedKVCache,
    RotatingKVCache,
    can_trim_prompt_cache,
    prefill_chunks,
    token_types_from_input_ids,
    trim_prompt_cache,
)
from mlx_model.errors import MemoryLimitError
from mlx_model.generate import prefill
from mlx_model.memory_limits import MemoryGuard
from mlx_model.prompt import Prompt, media_token_ids

from .conftest import argmax_agreement, prefill_inputs, reference_logits, relative_error

F32_TOL = 1e-4


def _run_fixed_chunks(model, inputs, bounds):
    """Prefill with the given chunk bounds (embedding the prompt once); all logits."""
    cache = model.make_cache()
    media = {k: v for k, v in inputs.items() if k not in ("input_ids", "mm_token_type_ids")}
    embeds = model.embed_inputs(inputs["input_ids"], **media)
    outs = []
    for start, end in bounds:
        outs.append(
            model(
                inputs["input_ids"][:, start:end],
                inputs_embeds=embeds[:, start:end],
                mm_token_type_ids=inputs["mm_token_type_ids"],  # whole sequence, by position
                cache=cache,
            )
        )
    return mx.concatenate(outs, axis=1), cache


def test_sliding_layers_keep_exactly_the_window_and_full_layers_grow(
    our_model, prompt_builder, window
):
    prompt = prompt_builder(1).text(2 * window + 3).build()
    cache = our_model.make_cache()
    our_model(**prompt.inputs(), cache=cache)
    our_model(np.array([[40]]), cache=cache)  # one decode step
    specs = our_model.config.text_config.layers
    assert len(cache) == len(specs)
    for spec, c in zip(specs, cache, strict=True):
        if spec.is_sliding:
            assert isinstance(c, RotatingKVCache)
            assert c.keys.shape[2] == window
        else:
            assert isinstance(c, KVCache)
            assert c.offset == len(prompt) + 1
            assert c.keys_and_values()[0].shape[2] == len(prompt) + 1


def _feed(cache, chunks, rng):
    """Write random (1, 1, n, 4) keys/values chunk by chunk; the capacities seen after each."""
    written, capacities = [], []
    for n in chunks:
        kv = mx.array(rng.normal(size=(1, 1, n, 4)).astype(np.float32))
        cache.update_and_fetch(kv, kv * 2)
        written.append(kv)
        capacities.append(cache.keys.shape[2])
    return mx.concatenate(written, axis=2), capacities


def test_a_full_layer_cache_told_the_prompt_length_grows_once_and_keeps_every_key():
    rng = np.random.default_rng(0)
    cache = ReservableKVCache()
    cache.reserve(1000)
    written, capacities = _feed(cache, [300] * 3 + [100], rng)
    keys, values = cache.keys_and_values()
    assert capacities == [1024] * 4
    assert np.array_equal(np.array(keys), np.array(written))
    assert np.array_equal(np.array(values), np.array(written) * 2)


def test_a_full_layer_cache_reserved_again_for_a_next_turn_moves_what_it_held():
    rng = np.random.default_rng(1)
    cache = ReservableKVCache()
    first, _ = _feed(cache, [300], rng)
    cache.reserve(2000)
    second, capacities = _feed(cache, [500, 500, 500], rng)
    assert len(set(capacities)) == 1 and 2000 <= capacities[0] < 2000 + cache.step
    keys, _ = cache.keys_and_values()
    assert np.array_equal(np.array(keys), np.concatenate([np.array(first), np.array(second)], 2))


def test_a_quantized_full_layer_cache_told_the_prompt_length_grows_once():
    rng = np.random.default_rng(2)
    cache = ReservableQuantizedKVCache(group_size=32, bits=8)
    cache.reserve(700)
    written, capacities = [], []
    for n in (300, 300, 100):
        kv = mx.array(rng.normal(size=(1, 1, n, 64)).astype(np.float32))
        cache.update_and_fetch(kv, kv)
        written.append(kv)
        capacities.append(cache.keys[0].shape[2])
    keys, _ = cache.keys_and_values()
    restored = mx.dequantize(*keys, group_size=32, bits=8)
    assert capacities == [768] * 3
    assert np.allclose(np.array(restored), np.array(mx.concatenate(written, axis=2)), atol=0.05)


def test_chunked_prefill_allocates_each_full_layer_cache_once(our_model, prompt_builder, window):
    prompt = prompt_builder(1).text(2 * window + 300).build()
    cache = our_model.make_cache()
    full = [c for c in cache if isinstance(c, ReservableKVCache)]
    seen = set()

    def after_each_chunk(done, total):
        seen.update(c.keys.shape[2] for c in full)

    prefill_inputs(our_model, prompt.inputs(), cache, 64, progress=after_each_chunk)
    assert full and len(seen) == 1 and seen.pop() >= len(prompt) > 256


def test_prefill_reserves_no_room_past_the_context_the_memory_plan_admits(
    our_model, prompt_builder, window
):
    prompt = prompt_builder(1).text(2 * window + 600).build()
    admitted = 300
    cache = our_model.make_cache()
    guard = MemoryGuard(limit_bytes=10**15, context_length=admitted)
    model_prompt = Prompt.from_inputs(prompt.inputs(), media_token_ids(our_model.config))
    with pytest.raises(MemoryLimitError):
        for _ in prefill(our_model, model_prompt, cache, chunk_size=64, memory_guard=guard):
            pass
    full = [c for c in cache if isinstance(c, ReservableKVCache)]
    assert len(prompt) > 2 * 256 and full
    assert all(c.keys.shape[2] < admitted + ReservableKVCache.step for c in full)


@pytest.mark.parametrize("chunk", [3, 16, 21])
def test_fixed_chunk_prefill_of_a_long_text_prompt_equals_one_shot(
    our_model, hf_model, prompt_builder, window, chunk
):
    prompt = prompt_builder(2).text(3 * window + 7).build()
    inputs = prompt.inputs()
    bounds = [(s, min(s + chunk, len(prompt))) for s in range(0, len(prompt), chunk)]
    chunked, _ = _run_fixed_chunks(our_model, inputs, bounds)
    ref = reference_logits(hf_model, inputs)
    assert relative_error(chunked, ref) <= F32_TOL
    assert argmax_agreement(chunked, ref) == 1.0


def test_chunker_moves_a_boundary_that_would_cut_a_block_to_the_block_end():
    types = np.array([[0, 0, 0, 1, 1, 1, 1, 0, 0, 2, 2, 0, 3, 3, 3, 0]])
    assert prefill_chunks(types, 4) == [(0, 7), (7, 11), (11, 15), (15, 16)]
    # audio (type 3) is not a bidirectional block and may be cut
    assert prefill_chunks(types, 13) == [(0, 13), (13, 16)]
    # as in transformers, a run of vision tokens is one block even if image meets video
    assert prefill_chunks(np.array([1, 1, 2, 2, 2, 0]), 2) == [(0, 5), (5, 6)]
    assert prefill_chunks(types[0], 100) == [(0, 16)]


def test_token_types_from_input_ids_mark_placeholders(ids):
    input_ids = np.array([[5, ids.boi, ids.image, ids.image, ids.eoi, ids.audio, ids.video]])
    types = token_types_from_input_ids(input_ids, ids.image, ids.video, ids.audio)
    assert types.tolist() == [[0, 0, 1, 1, 0, 3, 2]]


def test_chunked_prefill_never_cuts_an_image_and_equals_unchunked(
    our_model, hf_model, prompt_builder, window
):
    """An image block longer than the window, after a prefix longer than the window: fixed
    chunks would cut it; the planned chunks do not, and match the one-shot prefill and
    transformers. Cutting the block does change the result (the overlay needs the block)."""
    prompt = (
        prompt_builder(3).text(window + 5).image(rows=4, cols=6, budget=24).text(window).build()
    )
    inputs = prompt.inputs()
    chunk = window
    fixed = [(s, min(s + chunk, len(prompt))) for s in range(0, len(prompt), chunk)]
    planned = prefill_chunks(inputs["mm_token_type_ids"], chunk)
    assert planned != fixed
    types = inputs["mm_token_type_ids"][0]
    for start, _ in planned[1:]:
        assert not (types[start - 1] == 1 and types[start] == 1)

    ref = reference_logits(hf_model, inputs)
    one_shot = our_model(**inputs)
    chunked, _ = _run_fixed_chunks(our_model, inputs, planned)
    assert relative_error(one_shot, ref) <= F32_TOL
    assert relative_error(chunked, ref) <= F32_TOL
    assert argmax_agreement(chunked, ref) == 1.0
    cut, _ = _run_fixed_chunks(our_model, inputs, fixed)
    assert relative_error(cut, ref) > 1e-3

    # The token loop's prefill plans the same chunks and returns the last position's logits.
    cache = our_model.make_cache()
    last = prefill_inputs(our_model, inputs, cache, chunk)[1]
    assert last.shape[1] == 1
    assert relative_error(last[:, -1], ref[:, -1]) <= F32_TOL
    assert cache[0].offset == len(prompt)


def test_decode_after_chunked_prefill_matches_transformers(
    our_model, hf_model, prompt_builder, window
):
    prompt = prompt_builder(4).text(5).image(rows=3, cols=6, budget=18).text(window + 2).build()
    inputs = prompt.inputs()
    cache = our_model.make_cache()
    prefill_inputs(our_model, inputs, cache, 7)
    continuation = prompt_builder(5).random_tokens(2 * window)
    outs = [np.array(our_model(np.array([[t]]), cache=cache)[0, -1]) for t in continuation]
    full = {
        "input_ids": np.concatenate([inputs["input_ids"], [continuation]], axis=1),
        "mm_token_type_ids": np.concatenate(
            [inputs["mm_token_type_ids"], np.zeros((1, len(continuation)), np.int64)], axis=1
        ),
        **{k: v for k, v in inputs.items() if k not in ("input_ids", "mm_token_type_ids")},
    }
    ref = reference_logits(hf_model, full)[0, len(prompt) :]
    assert relative_error(np.stack(outs), ref) <= F32_TOL
    assert argmax_agreement(np.stack(outs), ref) == 1.0


class _FakeQuantizedKVCache(KVCache):
    """A float cache that stores keys/values rounded through mx.quantize/dequantize."""

    def __init__(self, group_size: int, bits: int):
        super().__init__()
        self.group_size, self.qbits = group_size, bits

    def _round(self, x):
        q = mx.quantize(x, group_size=self.group_size, bits=self.qbits)
        return mx.dequantize(*q, group_size=self.group_size, bits=self.qbits)

    def update_and_fetch(self, keys, values):
        return super().update_and_fetch(self._round(keys), self._round(values))


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_kv_cache_for_full_layers_equals_attention_over_rounded_kv(
    our_model, prompt_builder, window, bits
):
    """The quantized cache only rounds full layers' K/V: attention over it equals float
    attention over the same rounded K/V (a random tiny network amplifies the rounding
    itself too much for a meaningful absolute tolerance)."""
    prompt = prompt_builder(6).text(window + 4).build()
    continuation = prompt_builder(7).random_tokens(8)

    def decode(cache):
        first = our_model(**prompt.inputs(), cache=cache)
        steps = [np.array(our_model(np.array([[t]]), cache=cache)[0, -1]) for t in continuation]
        return np.array(first), np.stack(steps)

    qcache = our_model.make_cache(kv_bits=bits)
    specs = our_model.config.text_config.layers
    for spec, c in zip(specs, qcache, strict=True):
        assert isinstance(c, QuantizedKVCache) == (not spec.is_sliding)
    fake = [
        c if isinstance(c, RotatingKVCache) else _FakeQuantizedKVCache(q.group_size, q.bits)
        for c, q in zip(our_model.make_cache(), qcache, strict=True)
    ]
    q_prompt, q_steps = decode(qcache)
    f_prompt, f_steps = decode(fake)
    e_prompt, e_steps = decode(our_model.make_cache())
    assert relative_error(q_prompt, f_prompt) <= 1e-5
    assert relative_error(q_steps, f_steps) <= 1e-5
    assert relative_error(q_steps, e_steps) > 1e-4  # the K/V really were rounded


def test_trimming_before_the_window_wraps_reproduces_the_logits(our_model, prompt_builder, window):
    tokens = prompt_builder(8).random_tokens(window - 2)
    cache = our_model.make_cache()
    first = our_model(np.array([tokens]), cache=cache)
    assert can_trim_prompt_cache(cache)
    assert trim_prompt_cache(cache, 4) == 4
    again = our_model(np.array([tokens[-4:]]), cache=cache)
    assert relative_error(np.array(again), np.array(first[:, -4:])) <= 1e-6


def test_sliding_cache_is_not_trimmable_once_it_wrapped(our_model, prompt_builder, window):
    cache = our_model.make_cache()
    our_model(np.array([prompt_builder(9).random_tokens(window + 1)]), cache=cache)
    assert not can_trim_prompt_cache(cache)
    assert trim_prompt_cache(cache, 1) == 0


def test_logits_to_keep_and_hidden_states_agree_with_the_full_output(our_model, prompt_builder):
    prompt = prompt_builder(10).text(6).image(rows=2, cols=2, budget=4).text(3).build()
    full = our_model(**prompt.inputs())
    last, hidden = our_model(**prompt.inputs(), logits_to_keep=1, return_hidden=True)
    assert last.shape == (1, 1, full.shape[-1])
    assert hidden.shape == (1, 1, our_model.config.text_config.hidden_size)
    assert relative_error(np.array(last), np.array(full[:, -1:])) <= 1e-6
    assert relative_error(np.array(our_model.logits(hidden)), np.array(last)) == 0.0


def test_mismatched_feature_and_placeholder_counts_raise(our_model, prompt_builder):
    prompt = prompt_builder(11).text(3).image(rows=2, cols=3, budget=8).text(2).build()
    inputs = prompt.inputs()
    positions = inputs["image_position_ids"].copy()
    positions[0, 5] = -1  # one patch fewer than placeholders
    inputs["image_position_ids"] = positions
    with pytest.raises(ValueError, match="image features and image tokens do not match"):
        our_model(**inputs)


def test_numpy_and_mlx_inputs_give_the_same_logits(our_model, prompt_builder):
    prompt = prompt_builder(12).text(3).audio(4).text(2).build()
    as_np = our_model(**prompt.inputs())
    as_mx = our_model(**{k: mx.array(v) for k, v in prompt.inputs().items()})
    assert relative_error(np.array(as_mx), np.array(as_np)) == 0.0
