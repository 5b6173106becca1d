"""Quantization: uniform 4-bit by default everywhere it is safe, layer by layer on load."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlx_model.loading import load_model
from mlx_model.quantization import (
    QuantizationRecipe,
    QuantizedEmbedding,
    QuantizedLinear,
    is_quantizable,
    quantize_weight,
    quantized_nbytes,
)


def random_prompt(folder: Path, length: int = 48, seed: int = 0) -> mx.array:
    vocab = json.loads((folder / "config.json").read_text())["text_config"]["vocab_size"]
    return mx.array(np.random.default_rng(seed).integers(0, vocab, size=(1, length)))


def quantized_modules(model) -> dict[str, nn.Module]:
    return {
        p: m
        for p, m in model.named_modules()
        if isinstance(m, nn.QuantizedLinear | nn.QuantizedEmbedding)
    }


def float_modules(model) -> dict[str, nn.Module]:
    return {p: m for p, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)}


def test_default_is_4_bit_in_groups_of_64():
    recipe = QuantizationRecipe()
    assert (recipe.bits, recipe.group_size, recipe.embedding_bits) == (4, 64, None)


def test_every_linear_and_the_embedding_are_quantized_by_default(tiny_checkpoint):
    model = load_model(tiny_checkpoint, bits=4)
    quantized = quantized_modules(model)
    assert float_modules(model) == {}
    assert "language_model.embed_tokens" in quantized
    assert {(m.bits, m.group_size) for m in quantized.values()} == {(4, 64)}


def test_vision_patch_projection_with_its_wide_input_is_quantized(tiny_checkpoint):
    model = load_model(tiny_checkpoint, bits=4)
    assert isinstance(model.vision_embedder.patch_dense, nn.QuantizedLinear)


def test_norms_position_table_and_layer_scalars_stay_float(tiny_checkpoint):
    params = dict(tree_flatten(load_model(tiny_checkpoint, bits=4).parameters()))
    never = [k for k in params if "norm" in k or "pos_embedding" in k or "layer_scalar" in k]
    assert never
    assert all(params[k].dtype == mx.float32 for k in never)


def test_embedding_precision_is_an_explicit_option(tiny_checkpoint):
    model = load_model(tiny_checkpoint, bits=4, embedding_bits=6)
    assert model.language_model.embed_tokens.bits == 6
    assert model.language_model.layers[0].mlp.up_proj.bits == 4


def test_a_module_whose_width_does_not_split_into_groups_stays_float():
    recipe = QuantizationRecipe(group_size=64)
    assert recipe.params_for("x", nn.Linear(96, 8)) is None
    assert not is_quantizable(nn.Linear(96, 8), 64)


def test_quantized_model_computes_what_its_dequantized_weights_compute(tiny_checkpoint):
    quantized = load_model(tiny_checkpoint, bits=4)
    reference = load_model(tiny_checkpoint)
    dequantized = []
    for path, module in quantized_modules(quantized).items():
        w = mx.dequantize(
            module.weight, module.scales, module.biases, module.group_size, module.bits
        )
        dequantized.append((f"{path}.weight", w))
    reference.load_weights(dequantized, strict=False)
    prompt = random_prompt(tiny_checkpoint)
    got, want = quantized(input_ids=prompt), reference(input_ids=prompt)
    assert (mx.linalg.norm(got - want) / mx.linalg.norm(want)).item() < 1e-5


def test_quantizing_in_row_blocks_equals_one_call():
    w = mx.random.normal((300, 128)).astype(mx.bfloat16)
    whole = mx.quantize(w, group_size=64, bits=4)
    blocks = quantize_weight(w, 4, 64, max_chunk_bytes=128 * 8 * 7)
    assert all(mx.array_equal(a, b) for a, b in zip(whole, blocks, strict=True))


def test_quantized_byte_count_matches_the_arrays():
    w = mx.random.normal((256, 512)).astype(mx.bfloat16)
    q, s, b = mx.quantize(w, group_size=64, bits=4)
    assert quantized_nbytes(w.shape, 4, 64, scale_bytes=2) == q.nbytes + s.nbytes + b.nbytes


def test_layer_by_layer_quantization_peaks_below_the_float_model(tiny_checkpoint_bf16):
    float_bytes = sum(
        v.nbytes for _, v in tree_flatten(load_model(tiny_checkpoint_bf16, lazy=False).parameters())
    )
    largest = max(v.nbytes for _, v in tree_flatten(load_model(tiny_checkpoint_bf16).parameters()))
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    model = load_model(tiny_checkpoint_bf16, bits=4, lazy=False)
    peak = mx.get_peak_memory() - base
    final = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    print(
        f"\nbf16->4-bit load: peak {peak} B, final {final} B ({peak / final:.2f}x), float {float_bytes} B"
    )
    assert peak < float_bytes
    assert peak <= final + 2 * largest


@pytest.mark.parametrize(("bits", "floor"), [(8, 0.5), (4, 0.05)])
def test_top1_agreement_with_the_bf16_model(tiny_checkpoint_bf16, bits, floor):
    """Random tiny networks are chaotic (no trained margins), so agreement is far below what
    a trained 12B shows; the floors are well above chance (1/vocab) and catch broken scales."""
    reference = load_model(tiny_checkpoint_bf16)
    quantized = load_model(tiny_checkpoint_bf16, bits=bits)
    agree, rel = [], []
    for seed in range(4):
        prompt = random_prompt(tiny_checkpoint_bf16, seed=seed)
        want = reference(input_ids=prompt).astype(mx.float32)
        got = quantized(input_ids=prompt).astype(mx.float32)
        agree.append((got.argmax(-1) == want.argmax(-1)).mean().item())
        rel.append((mx.linalg.norm(got - want) / mx.linalg.norm(want)).item())
    vocab = want.shape[-1]
    print(
        f"\n{bits}-bit vs bf16 on the tiny model: top-1 agreement {np.mean(agree):.1%}, "
        f"logits relative error {np.mean(rel):.3f} (chance {1 / vocab:.2%})"
    )
    assert np.mean(agree) >= floor


def test_more_bits_agree_better(tiny_checkpoint_bf16):
    reference = load_model(tiny_checkpoint_bf16)
    prompt = random_prompt(tiny_checkpoint_bf16, length=64)
    want = reference(input_ids=prompt).astype(mx.float32)
    errors = {}
    for bits in (4, 8):
        got = load_model(tiny_checkpoint_bf16, bits=bits)(input_ids=prompt).astype(mx.float32)
        errors[bits] = (mx.linalg.norm(got - want) / mx.linalg.norm(want)).item()
    assert errors[8] < errors[4] / 2


def test_streaming_a_tensor_from_its_file_in_row_blocks_equals_one_call(tmp_path):
    from mlx_model.loading import TensorLocation, quantize_from_file, safetensors_header

    w = mx.random.normal((300, 128)).astype(mx.bfloat16)
    file = tmp_path / "w.safetensors"
    mx.save_safetensors(str(file), {"w": w})
    header = safetensors_header(file)
    info = header["w"]
    location = TensorLocation(
        file,
        header["__data_start__"] + info["data_offsets"][0],
        info["dtype"],
        tuple(info["shape"]),
    )
    streamed = quantize_from_file(location, 4, 64, block_bytes=128 * 2 * 7)
    whole = mx.quantize(w, group_size=64, bits=4)
    assert all(mx.array_equal(a, b) for a, b in zip(whole, streamed, strict=True))


def _exact_product(x: mx.array, q: mx.array, s: mx.array, b: mx.array) -> np.ndarray:
    """x @ W.T in float64, W dequantized with float32 scales/biases (no rounding of W)."""
    f32 = mx.float32
    w = mx.dequantize(q, s.astype(f32), b.astype(f32), group_size=64, bits=4)
    return np.array(x.astype(f32)).astype(np.float64) @ np.array(w).astype(np.float64).T


def test_loaded_quantized_layers_are_drop_in_mlx_quantized_layers(tiny_checkpoint):
    model = load_model(tiny_checkpoint, bits=4)
    assert isinstance(model.language_model.embed_tokens, QuantizedEmbedding)
    assert isinstance(model.language_model.layers[0].mlp.up_proj, QuantizedLinear)
    assert isinstance(model.language_model.layers[0].mlp.up_proj, nn.QuantizedLinear)


def test_bf16_quantized_product_keeps_its_dtype_and_is_rounded_only_once():
    """bf16 inputs are multiplied in float32 and only the result is rounded to bf16 (the GPU
    kernels do so natively; MLX's CPU bf16 kernel would accumulate in bf16, ~3e-2 here)."""
    layer = nn.Linear(1024, 512, bias=False)
    layer.weight = (layer.weight * 0.05).astype(mx.bfloat16)
    layer = QuantizedLinear.from_linear(layer, group_size=64, bits=4)
    x = mx.random.normal((1, 3, 1024), key=mx.random.key(0)).astype(mx.bfloat16)
    got = layer(x)
    want = _exact_product(x, layer.weight, layer.scales, layer.biases)
    assert got.dtype == mx.bfloat16
    rel = np.linalg.norm(np.array(got.astype(mx.float32)) - want) / np.linalg.norm(want)
    assert rel < 4e-3  # bf16 has 8 significant bits: rounding alone is ~1.6e-3


def test_float32_quantized_product_is_exactly_mlx_s(tiny_checkpoint):
    model = load_model(tiny_checkpoint, bits=4)
    ours = model.language_model.layers[0].self_attn.q_proj
    x = mx.random.normal((1, 4, ours.weight.shape[-1] * 32 // ours.bits), key=mx.random.key(1))
    plain = mx.quantized_matmul(
        x, ours.weight, ours.scales, ours.biases, transpose=True, group_size=64, bits=4
    )
    assert mx.array_equal(ours(x), plain)
    head = model.language_model.embed_tokens
    plain_head = mx.quantized_matmul(
        x[..., : head.weight.shape[-1] * 32 // head.bits],
        head.weight,
        head.scales,
        head.biases,
        transpose=True,
        group_size=64,
        bits=4,
    )
    assert mx.array_equal(
        head.as_linear(x[..., : head.weight.shape[-1] * 32 // head.bits]), plain_head
    )
