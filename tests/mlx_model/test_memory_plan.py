"""The memory plan: weights at a precision + KV at a context + headroom, against the device budget."""

from __future__ import annotations

import json

import mlx.core as mx
import mlx.nn as nn
import psutil
import pytest
from mlx.utils import tree_flatten

from mlx_model.config import REFERENCE_CONFIG, ModelConfig
from mlx_model.convert import convert
from mlx_model.loading import load_model
from mlx_model.memory_plan import (
    MIN_PREFILL_CHUNK,
    MemoryPlanError,
    cpu_upcast_nbytes,
    device_budget,
    parameter_count,
    plan_memory,
)
from mlx_model.quantization import quantize_modules

GB = 10**9
BIG_BUDGET = 10**15


@pytest.fixture(scope="module")
def config_12b() -> ModelConfig:
    return ModelConfig.from_dict(json.loads(REFERENCE_CONFIG.read_text()))


@pytest.fixture(scope="module")
def tiny_config(tiny_checkpoint) -> ModelConfig:
    return ModelConfig.from_dict(json.loads((tiny_checkpoint / "config.json").read_text()))


def test_12b_reference_config_has_the_spec_parameter_count(config_12b):
    # gemma4-unified-spec.md 1.6, counted on a meta-device transformers instance.
    assert parameter_count(config_12b) == 11_959_730_176


def test_12b_at_4_bits_needs_about_6_7_gb_of_weights(config_12b):
    plan = plan_memory(config_12b, bits=4, context_length=8192, device_budget_bytes=BIG_BUDGET)
    # 4 bits + a 16-bit scale and bias per 64 weights = 4.5 bits per weight, norms aside.
    assert plan.weights_bytes == pytest.approx(11_959_730_176 * 4.5 / 8, rel=0.01)


def test_12b_full_layers_cache_16_kib_per_token(config_12b):
    # spec 1.6: 8 full layers x (K + V) x 1 head x 512 dims x 2 bytes (k_eq_v caches both).
    plan = plan_memory(config_12b, bits=4, context_length=8192, device_budget_bytes=BIG_BUDGET)
    assert plan.kv_bytes_per_token_full == 16 * 1024


def test_sliding_layers_are_bounded_and_full_layers_grow(config_12b):
    short, long = (
        plan_memory(config_12b, bits=4, context_length=n, device_budget_bytes=BIG_BUDGET)
        for n in (8192, 131072)
    )
    assert short.kv_bytes_sliding == long.kv_bytes_sliding
    assert long.kv_bytes - short.kv_bytes == (131072 - 8192) * 16 * 1024


def test_k_eq_v_full_layers_still_count_keys_and_values(tiny_config):
    plan = plan_memory(tiny_config, bits=None, context_length=4096, device_budget_bytes=BIG_BUDGET)
    full = [s for s in tiny_config.text_config.layers if not s.is_sliding]
    assert any(s.k_eq_v for s in full)
    assert plan.kv_bytes_per_token_full == sum(
        2 * s.num_key_value_heads * s.head_dim * 2 for s in full
    )


def test_planned_kv_covers_the_slots_the_caches_allocate(tiny_checkpoint_bf16, tiny_config):
    # mlx-lm's caches grow in blocks of 256 slots: 12 prompt tokens + 4 decoded hold far more.
    model = load_model(tiny_checkpoint_bf16)
    cache = model.make_cache()
    logits = model(mx.array([list(range(20, 32))]), cache=cache, logits_to_keep=1)
    y = mx.argmax(logits[:, -1], axis=-1, keepdims=True)
    for _ in range(4):
        y = mx.argmax(model(y, cache=cache)[:, -1], axis=-1, keepdims=True)
    mx.eval(y, [c.state for c in cache])
    allocated = sum(c.keys.nbytes + c.values.nbytes for c in cache)
    plan = plan_memory(
        tiny_config, bits=None, context_length=16, dtype_bytes=2, device_budget_bytes=BIG_BUDGET
    )
    assert allocated <= plan.kv_bytes


@pytest.mark.skipif(
    mx.default_device() != mx.cpu, reason="CPU backend only: Metal's kernels read bf16 scales"
)
def test_cpu_logits_headroom_covers_the_float32_scales_a_quantized_head_needs():
    # On the CPU backend a bf16 product runs in float32 and MLX converts the head's scales
    # and biases for it: vocab x groups x 2 x 4 bytes that exist only during the step.
    holder = nn.Module()
    holder.head = nn.Embedding(8192, 1024)
    holder.head.weight = holder.head.weight.astype(mx.bfloat16)
    params = {"group_size": 64, "bits": 4, "mode": "affine"}
    quantized = {"head.weight": params}
    planned = cpu_upcast_nbytes(holder, quantized, dtype_bytes=2, backend="cpu")
    assert cpu_upcast_nbytes(holder, quantized, dtype_bytes=2, backend="metal") == 0
    quantize_modules(holder, {"head": params})
    mx.eval(holder.parameters())
    x = mx.random.normal((1, 1, 1024)).astype(mx.bfloat16)
    mx.eval(x)
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    logits = holder.head.as_linear(x)
    mx.eval(logits)
    step = mx.get_peak_memory() - before
    assert planned == 8192 * (1024 // 64) * 2 * 4
    assert planned <= step <= planned + 4 * logits.nbytes


def test_quantized_kv_shrinks_the_full_layers(config_12b):
    plain, q8 = (
        plan_memory(
            config_12b, bits=4, context_length=131072, kv_bits=k, device_budget_bytes=BIG_BUDGET
        )
        for k in (None, 8)
    )
    assert q8.kv_bytes_per_token_full < 0.6 * plain.kv_bytes_per_token_full
    assert q8.kv_bytes_sliding == plain.kv_bytes_sliding


def test_planned_weights_match_the_loaded_quantized_model(tiny_checkpoint_bf16, tiny_config):
    model = load_model(tiny_checkpoint_bf16, bits=4)
    actual = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    plan = plan_memory(tiny_config, bits=4, context_length=1024, device_budget_bytes=BIG_BUDGET)
    assert plan.weights_bytes == actual


@pytest.mark.parametrize(("bits", "embedding_bits"), [(8, None), (4, 8)])
def test_planned_weights_of_a_converted_checkpoint_are_counted_as_stored(
    tiny_checkpoint_bf16, tmp_path, bits, embedding_bits
):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q", bits=bits, embedding_bits=embedding_bits)
    config = ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
    actual = sum(v.nbytes for _, v in tree_flatten(load_model(folder).parameters()))
    plan = plan_memory(config, bits=None, context_length=1024, device_budget_bytes=BIG_BUDGET)
    assert (plan.bits, plan.weights_bytes) == (bits, actual)


def test_a_plan_that_does_not_fit_proposes_what_does(config_12b):
    with pytest.raises(MemoryPlanError) as info:
        plan_memory(config_12b, bits=8, context_length=262144, device_budget_bytes=16 * GB)
    message = str(info.value)
    assert "8-bit weights and 256K context need" in message
    assert "4-bit weights and 256K context fit in" in message and "of 16.0 GB" in message
    assert all(p.fits for p in info.value.alternatives)


def test_a_shorter_context_is_proposed_when_weights_alone_fit(config_12b):
    with pytest.raises(MemoryPlanError) as info:
        plan_memory(
            config_12b, bits=4, context_length=262144, kv_bits=4, device_budget_bytes=8.5 * GB
        )
    best = info.value.alternatives[0]
    assert best.bits == 4 and best.context_length < 262144 and best.total_bytes <= 8.5 * GB


def test_when_nothing_fits_the_error_says_so(config_12b):
    with pytest.raises(MemoryPlanError, match="Nothing fits"):
        plan_memory(config_12b, bits=4, context_length=8192, device_budget_bytes=1 * GB)


def test_the_plan_fits_within_the_budget_it_reports(config_12b):
    plan = plan_memory(config_12b, bits=4, context_length=32768, device_budget_bytes=16 * GB)
    assert (
        plan.fits and plan.total_bytes == plan.weights_bytes + plan.kv_bytes + plan.headroom_bytes
    )
    assert "4-bit weights and 32K context fit in" in plan.summary()


def test_context_past_the_model_limit_is_refused(tiny_config):
    too_long = tiny_config.text_config.max_position_embeddings + 1
    with pytest.raises(ValueError, match="max_position_embeddings"):
        plan_memory(tiny_config, bits=4, context_length=too_long, device_budget_bytes=BIG_BUDGET)


@pytest.mark.skipif(mx.metal.is_available(), reason="on Metal the budget is the working set")
def test_budget_off_metal_is_physical_memory():
    assert device_budget()[0] == psutil.virtual_memory().total


@pytest.mark.parametrize("backend", ["metal", "cpu"])
@pytest.mark.parametrize("context", [8192, 32768, 131072, 262144])
def test_attention_temporaries_stay_within_the_attention_budget_at_any_context(
    config_12b, backend, context
):
    from mlx_model.attention import AttentionOptions

    plan = plan_memory(
        config_12b, bits=4, context_length=context, device_budget_bytes=BIG_BUDGET, backend=backend
    )
    attention = plan.breakdown["headroom.attention"]
    # the budget per layer, plus the window-bounded sliding mask a forward keeps
    assert attention <= AttentionOptions().budget_bytes + plan.prefill_chunk * (1024 + 512)
    full = next(a for a in plan.attention if a.layer_type == "full_attention")
    assert (full.head_dim, full.keys, full.path.kind) == (512, context, "blocked")
    assert not full.path.scores_materialized


def test_a_tight_plan_runs_smaller_prefill_chunks_instead_of_failing(config_12b):
    roomy = plan_memory(
        config_12b, bits=4, context_length=262144, kv_bits=4, device_budget_bytes=BIG_BUDGET
    )
    tight = plan_memory(
        config_12b,
        bits=4,
        context_length=262144,
        kv_bits=4,
        device_budget_bytes=roomy.total_bytes - 1,
    )
    assert roomy.prefill_chunk == 512
    assert MIN_PREFILL_CHUNK <= tight.prefill_chunk < 512
    assert tight.fits and tight.requested_chunk == 512
    assert "reduced from 512 to fit" in tight.describe()
