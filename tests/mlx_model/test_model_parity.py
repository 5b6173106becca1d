"""Parity of the MLX network with transformers' Gemma4UnifiedForConditionalGeneration.

Same tiny random checkpoint, same inputs in transformers' format. Against transformers in
float32 the gate is the relative Frobenius error of the logits over the whole prompt
(<= 1e-4) plus identical argmax, for the prompt and for the cached decode steps that follow.
Against transformers in float64 (the exact answer for these weights) our float32 error must be
within 1.5x of transformers' own float32 error (floor 1e-4), argmax agreement >= 99.5%.

Image/video attention: the default is Google's (full layers causal, bidirectional blocks in
sliding layers only), checked against transformers' `create_masks_for_vision_model` masks;
the `vision_overlay_mode="all_layers"` switch is checked against transformers' forward path.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from .conftest import (
    argmax_agreement,
    load_our_model,
    load_reference,
    reference_logits,
    relative_error,
)

F32_TOL = 1e-4
DECODE_STEPS = 6
# Against the float64 reference: our float32 error within this factor of transformers' own
# float32 error (never gated tighter than F64_FLOOR), and argmax agreement at least this.
F64_FACTOR = 1.5
F64_FLOOR = 1e-4
F64_ARGMAX = 0.995
F64_SEEDS = (0, 1, 2)


def _cases(window: int):
    """name -> builder callback; image blocks and prompts are sized against the window."""
    side = int(window**0.5) + 1  # a side x side image is one block longer than the window
    return {
        "text_only": lambda b: b.text(2 * window + 5),
        "one_image": lambda b: b.text(5).image(rows=2, cols=5, budget=12).text(6),
        "image_longer_than_the_window": lambda b: (
            b.text(5).image(rows=side, cols=side + 1, budget=side * (side + 1)).text(6)
        ),
        "two_images_different_aspect_ratios": lambda b: (
            b.text(3)
            .image(rows=2, cols=5, budget=12)
            .text(4)
            .image(rows=4, cols=1, budget=12)
            .text(3)
        ),
        "audio": lambda b: b.text(4).audio(frames=9).text(3).audio(frames=5).text(2),
        "video": lambda b: b.text(3).video(frames=3, rows=2, cols=3, budget=8).text(4),
        "mixed_image_audio_video": lambda b: (
            b.text(4)
            .image(rows=3, cols=3, budget=10)
            .text(2)
            .audio(frames=7)
            .text(3)
            .video(frames=2, rows=2, cols=2, budget=4)
            .text(2)
            .image(rows=1, cols=4, budget=10)
            .text(2)
        ),
    }


CASES = list(_cases(16))
VISION_CASES = [c for c in CASES if c not in ("text_only", "audio")]


def _prompt(prompt_builder, window: int, case: str, seed: int):
    builder = prompt_builder(seed)
    _cases(window)[case](builder)
    return builder.build()


def test_image_case_really_has_a_block_longer_than_the_window(prompt_builder, window):
    prompt = _prompt(prompt_builder, window, "image_longer_than_the_window", seed=0)
    assert sum(t == 1 for t in prompt.token_types) > window


@pytest.mark.parametrize("case", CASES)
def test_prompt_logits_match_transformers(our_model, hf_model, prompt_builder, window, case):
    """The default (Google's semantics) against transformers' vision-model masks."""
    prompt = _prompt(prompt_builder, window, case, seed=CASES.index(case))
    ref = reference_logits(hf_model, prompt.inputs())
    ours = our_model(**prompt.inputs())
    assert ours.shape == ref.shape
    err = relative_error(ours, ref)
    assert err <= F32_TOL, f"{case}: relative error {err:.2e}"
    assert argmax_agreement(ours, ref) == 1.0


@pytest.mark.parametrize("case", VISION_CASES)
def test_all_layers_switch_matches_transformers_forward_path(
    our_model_all_layers, hf_model, prompt_builder, window, case
):
    prompt = _prompt(prompt_builder, window, case, seed=CASES.index(case))
    ref = reference_logits(hf_model, prompt.inputs(), semantics="all_layers")
    ours = our_model_all_layers(**prompt.inputs())
    err = relative_error(ours, ref)
    assert err <= F32_TOL, f"{case}: relative error {err:.2e}"
    assert argmax_agreement(ours, ref) == 1.0


@pytest.mark.parametrize(
    ("semantics", "case"),
    [("sliding_only", c) for c in CASES] + [("all_layers", c) for c in VISION_CASES],
)
def test_float32_error_is_within_transformers_own_against_float64(
    tiny_checkpoint, our_model, our_model_all_layers, hf_model, hf_model_f64, prompt_builder,
    window, semantics, case,
):  # fmt: skip
    ours_model = our_model if semantics == "sliding_only" else our_model_all_layers
    for seed in F64_SEEDS:
        inputs = _prompt(prompt_builder, window, case, seed=1000 + seed).inputs()
        exact = reference_logits(hf_model_f64, inputs, semantics=semantics)
        hf_err = relative_error(reference_logits(hf_model, inputs, semantics=semantics), exact)
        ours = np.array(ours_model(**inputs)).astype(np.float64)
        err = relative_error(ours, exact)
        gate = max(F64_FACTOR * hf_err, F64_FLOOR)
        assert err <= gate, f"seed {seed}: ours {err:.2e}, transformers' float32 {hf_err:.2e}"
        assert argmax_agreement(ours, exact) >= F64_ARGMAX


@pytest.mark.parametrize("case", ["one_image", "video", "audio", "mixed_image_audio_video"])
def test_media_embeddings_are_as_precise_as_transformers_float32(
    our_model, hf_model, hf_model_f64, prompt_builder, window, case
):
    """The soft tokens merged into the sequence (vision: patch LayerNorm over the raw pixels,
    dense, position embeddings, projection; audio: norm and projection), before the decoder
    amplifies anything: our float32 error against the float64 run is within 1.5x of
    transformers' own (with no floor: these errors are ~3e-7)."""
    for seed in F64_SEEDS:
        inputs = _prompt(prompt_builder, window, case, seed=2000 + seed).inputs()
        media = inputs["mm_token_type_ids"][0] > 0
        exact = _reference_embeddings(hf_model_f64, inputs)[media]
        hf_err = relative_error(_reference_embeddings(hf_model, inputs)[media], exact)
        media_inputs = {k: v for k, v in inputs.items() if k not in ("mm_token_type_ids",)}
        ours = np.array(our_model.embed_inputs(**media_inputs)[0]).astype(np.float64)[media]
        err = relative_error(ours, exact)
        assert err <= F64_FACTOR * hf_err, f"seed {seed}: ours {err:.2e}, theirs {hf_err:.2e}"


def _reference_embeddings(hf_model, inputs) -> np.ndarray:
    """The embeddings transformers hands its decoder (text scaled, media merged)."""
    captured = {}
    hook = hf_model.model.language_model.register_forward_pre_hook(
        lambda _m, _a, kwargs: captured.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
    )
    try:
        reference_logits(hf_model, inputs)
    finally:
        hook.remove()
    return captured["embeds"][0].double().numpy()


@pytest.mark.parametrize("case", CASES)
def test_cached_decode_steps_match_transformers(our_model, hf_model, prompt_builder, window, case):
    """Prefill through the caches, then decode token by token; transformers runs the whole
    sequence at once (decode positions are plain causal in both)."""
    prompt = _prompt(prompt_builder, window, case, seed=100 + CASES.index(case))
    cache = our_model.make_cache()
    logits = our_model(**prompt.inputs(), cache=cache)
    steps, step_logits = [], []
    next_token = int(np.array(logits[0, -1]).argmax())
    for _ in range(DECODE_STEPS):
        steps.append(next_token)
        out = our_model(np.array([[next_token]]), cache=cache)
        step_logits.append(np.array(out[0, -1]))
        next_token = int(step_logits[-1].argmax())

    full = prompt.inputs()
    full["input_ids"] = np.concatenate([full["input_ids"], [steps]], axis=1)
    full["mm_token_type_ids"] = np.concatenate(
        [full["mm_token_type_ids"], np.zeros((1, len(steps)), np.int64)], axis=1
    )
    ref = reference_logits(hf_model, full)
    n = len(prompt)
    assert relative_error(logits, ref[:, :n]) <= F32_TOL
    ref_steps = ref[0, n:]
    err = relative_error(np.stack(step_logits), ref_steps)
    assert err <= F32_TOL, f"{case}: decode relative error {err:.2e}"
    assert argmax_agreement(np.stack(step_logits), ref_steps) == 1.0


def test_text_decoding_far_past_the_window_matches_transformers(
    our_model, hf_model, prompt_builder, window
):
    prompt = prompt_builder(7).text(window + 3).build()
    cache = our_model.make_cache()
    first = our_model(**prompt.inputs(), cache=cache)
    continuation = prompt_builder(8).random_tokens(3 * window)
    outs = [np.array(our_model(np.array([[t]]), cache=cache)[0, -1]) for t in continuation]
    full = {"input_ids": np.array([prompt.input_ids + continuation])}
    ref = reference_logits(hf_model, full)
    assert relative_error(first, ref[:, : len(prompt)]) <= F32_TOL
    assert relative_error(np.stack(outs), ref[0, len(prompt) :]) <= F32_TOL
    assert argmax_agreement(np.stack(outs), ref[0, len(prompt) :]) == 1.0


def test_default_masks_are_transformers_vision_model_masks_with_googles_window(
    our_model, hf_model, prompt_builder, window
):
    """Full layers causal; sliding layers (q - W < k < q + W) AND (causal OR same block):
    transformers' `create_masks_for_vision_model` bounds only the past, Google's window is
    two-sided, so they differ exactly on block keys W or more ahead of the query."""
    import torch
    from transformers.models.gemma4_unified import modeling_gemma4_unified as reference

    prompt = _prompt(prompt_builder, window, "image_longer_than_the_window", seed=0)
    types = prompt.inputs()["mm_token_type_ids"]
    n = len(prompt)
    ours = our_model._make_masks(n, 0, 0, types, 1)
    assert ours["full_attention"].whole() == "causal"
    ours_sliding = np.array(ours["sliding_attention"].whole()).reshape(n, n)

    theirs = reference.Gemma4UnifiedForConditionalGeneration.create_masks_for_generate(
        hf_model.config,
        inputs_embeds=torch.zeros(1, n, 1),
        attention_mask=None,
        cache=None,
        position_ids=torch.arange(n)[None],
        mm_token_type_ids=torch.from_numpy(types),
    )
    full = theirs["full_attention"]
    assert full is None or bool((full.reshape(n, n) == torch.ones(n, n).tril().bool()).all())
    theirs_sliding = theirs["sliding_attention"].reshape(n, n).numpy()
    q, k = np.arange(n)[:, None], np.arange(n)[None]
    assert (ours_sliding == (theirs_sliding & (k < q + window))).all()
    assert (ours_sliding != theirs_sliding).any()  # the block is longer than the window


def test_the_two_semantics_differ_on_every_image(
    our_model, our_model_all_layers, prompt_builder, window
):
    """Not only when a block is longer than the window: full layers differ on any image."""
    prompt = _prompt(prompt_builder, window, "one_image", seed=0)
    assert sum(t == 1 for t in prompt.token_types) < window
    default = our_model(**prompt.inputs())
    forward_path = our_model_all_layers(**prompt.inputs())
    assert relative_error(default, np.array(forward_path)) > 1e-2


def test_checkpoint_without_vision_attention_is_causal_everywhere(
    tiny_checkpoint_causal, prompt_builder, window
):
    """`use_bidirectional_attention: null` (Google's E2B/E4B): no block attends ahead, in
    either semantics; transformers' forward path agrees."""
    ours = load_our_model(tiny_checkpoint_causal)
    assert ours.config.text_config.vision_overlay is None
    hf = load_reference(tiny_checkpoint_causal)
    prompt = _prompt(prompt_builder, window, "mixed_image_audio_video", seed=5)
    n = len(prompt)
    masks = ours._make_masks(n, 0, 0, prompt.inputs()["mm_token_type_ids"], 1)
    assert masks["full_attention"].whole() == "causal"
    ref = reference_logits(hf, prompt.inputs(), semantics="all_layers")
    assert relative_error(ours(**prompt.inputs()), ref) <= F32_TOL
    no_types = {k: v for k, v in prompt.inputs().items() if k != "mm_token_type_ids"}
    assert relative_error(ours(**no_types), ref) <= F32_TOL
    switched = load_our_model(tiny_checkpoint_causal, vision_overlay_mode="all_layers")
    assert switched.config.text_config.vision_overlay is None


def test_bfloat16_checkpoint_is_as_accurate_as_transformers_in_bfloat16(
    tiny_checkpoint_bf16, prompt_builder, window
):
    """bf16 weights compute in bf16, and both implementations round activations to bf16 at
    slightly different points (fused norms, attention), so bitwise agreement is impossible and
    a random tiny network amplifies rounding (transformers' own bf16 run is ~10% off its
    float32 run here). The tolerance is therefore bf16 itself: against a float32 run of the
    same bf16-valued weights, our error and argmax agreement must be as good as
    transformers-bf16's, within a margin."""
    ours_model = load_our_model(tiny_checkpoint_bf16)
    assert ours_model.language_model.embed_tokens.weight.dtype == mx.bfloat16
    hf_bf16 = load_reference(tiny_checkpoint_bf16, "bfloat16")
    hf_f32 = load_reference(tiny_checkpoint_bf16, "float32")
    builder = prompt_builder(21).text(4).image(rows=3, cols=4, budget=12).text(3).audio(5)
    inputs = builder.text(window).build().inputs()
    ref = reference_logits(hf_bf16, inputs)
    exact = reference_logits(hf_f32, inputs)
    ours = ours_model(**inputs)
    assert ours.dtype == mx.bfloat16
    hf_noise = relative_error(ref, exact)
    err = relative_error(ours, exact)
    assert err <= 1.5 * hf_noise, f"our bf16 error {err:.3e} vs transformers' {hf_noise:.3e}"
    assert argmax_agreement(ours, exact) >= argmax_agreement(ref, exact) - 0.15
    assert relative_error(ours, ref) <= 2.0 * hf_noise
