"""Long prompts: chunked prefill with key-blocked attention stays exact, reports progress, cancels."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.attention import AttentionOptions

from .conftest import load_our_model, prefill_inputs

PLAIN = AttentionOptions(mode="plain")
# Any chunk's scores pass a one-byte budget: "auto" then picks key blocks of the smallest size.
BLOCKED_AUTO = AttentionOptions(budget_bytes=1)


@pytest.fixture
def attention_options(request):
    """Set a model's attention options for one test and put the default back after it."""
    changed = []

    def use(model, options):
        changed.append((model, model.attention_options))
        model.attention_options = options

    yield use
    for model, options in reversed(changed):
        model.attention_options = options


@pytest.fixture(scope="module")
def float64_models(tiny_checkpoint):
    """The tiny checkpoint computed in float64 on the plain path: the exactness oracle."""
    models = {}
    for mode in ("sliding_only", "all_layers"):
        model = load_our_model(tiny_checkpoint, vision_overlay_mode=mode, dtype=mx.float64)
        model.attention_options = PLAIN
        models[mode] = model
    return models


def _long_prompt(prompt_builder, window: int, seed: int = 0):
    """Several windows long, with images (one longer than the window) and audio spread through."""
    b = prompt_builder(seed)
    b.text(window + 3).image(5, 5, 30).text(7).audio(9).text(2 * window)
    b.image(2, 3, 30).text(window).audio(5).text(11).image(4, 5, 30).text(window // 2)
    return b.build()


def _prefill_and_decode(model, inputs, chunk, steps, forced=None):
    """Logits of the last prompt position and of `steps` cached decode steps, and the tokens
    (greedy, or `forced`)."""
    cache = model.make_cache()
    _, logits = prefill_inputs(model, inputs, cache, chunk)
    out, tokens = [logits[:, -1]], []
    for i in range(steps):
        token = forced[i] if forced is not None else int(mx.argmax(out[-1], axis=-1).item())
        tokens.append(token)
        out.append(model(mx.array([[token]]), cache=cache)[:, -1])
    return np.array(mx.stack(out, axis=1).astype(mx.float32)).astype(np.float64), tokens


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("mode", ["sliding_only", "all_layers"])
def test_long_prompt_with_images_and_audio_decodes_the_same_chunked_and_blocked_as_in_one_plain_forward(
    tiny_checkpoint,
    our_model,
    our_model_all_layers,
    prompt_builder,
    window,
    attention_options,
    mode,
):
    model = our_model if mode == "sliding_only" else our_model_all_layers
    prompt = _long_prompt(prompt_builder, window)
    assert len(prompt) > 5 * window
    inputs = prompt.inputs()

    attention_options(model, PLAIN)
    ref_logits, ref_tokens = _prefill_and_decode(model, inputs, None, 8)
    attention_options(model, BLOCKED_AUTO)
    logits, tokens = _prefill_and_decode(model, inputs, 2 * window - 5, 8)

    assert tokens == ref_tokens
    assert _rel(logits, ref_logits) <= 1e-4


@pytest.mark.parametrize("mode", ["sliding_only", "all_layers"])
def test_chunked_blocked_prefill_and_decode_are_as_close_to_float64_as_the_plain_path(
    our_model, our_model_all_layers, float64_models, prompt_builder, window, attention_options, mode
):
    """float32 key blocks (then cached decode steps) err against a float64 run of the same
    network no more than 1.5x as much as float32 on MLX's plain path, chunked the same way."""
    model = our_model if mode == "sliding_only" else our_model_all_layers
    inputs = _long_prompt(prompt_builder, window, seed=3).inputs()
    forced = [40, 41, 42, 43]
    with mx.stream(mx.cpu):
        ref, _ = _prefill_and_decode(float64_models[mode], inputs, None, 4, forced)
    errors = {}
    for name, options in {
        "plain": PLAIN,
        "blocked": AttentionOptions(mode="blocked", block=5),
    }.items():
        attention_options(model, options)
        logits, _ = _prefill_and_decode(model, inputs, 2 * window - 5, 4, forced)
        errors[name] = _rel(logits, ref)
    assert errors["blocked"] <= 1.5 * errors["plain"], errors


def test_prefill_reports_the_tokens_in_the_cache_after_each_chunk(
    our_model, prompt_builder, window
):
    prompt = _long_prompt(prompt_builder, window, seed=1)
    reports = []
    prefill_inputs(
        our_model,
        prompt.inputs(),
        our_model.make_cache(),
        window,
        progress=lambda done, total: reports.append((done, total)),
    )
    done = [d for d, _ in reports]
    assert all(total == len(prompt) for _, total in reports)
    assert done == sorted(done) and done[-1] == len(prompt) and len(done) > 5
    assert max(b - a for a, b in zip([0] + done, done, strict=False)) >= window  # blocks whole


def test_cancelled_prefill_keeps_whole_chunks_and_continues_to_the_same_logits(
    our_model, prompt_builder, window
):
    prompt = prompt_builder(2).text(6 * window + 5).build()
    inputs = prompt.inputs()
    _, uninterrupted = prefill_inputs(our_model, inputs, our_model.make_cache(), window)

    cache = our_model.make_cache()
    asked = []
    done, _ = prefill_inputs(
        our_model, inputs, cache, window, should_stop=lambda: asked.append(1) or len(asked) > 3
    )
    assert done == 3 * window < len(prompt)
    assert all(c.offset == done for c in cache)
    _, resumed = prefill_inputs(our_model, inputs, cache, window, start=done)
    assert np.allclose(np.array(resumed), np.array(uninterrupted), atol=1e-5)
