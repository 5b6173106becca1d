"""Sampling options: checkpoint defaults, overrides, and the sampler they build."""

from __future__ import annotations

import json

import mlx.core as mx
import pytest

from mlx_model.sampling import (
    MODEL_CARD_DEFAULTS,
    SamplingOptions,
    TokenSuppressor,
    choose_token,
    eos_token_ids,
    make_token_sampler,
    seed_random,
    suppress_token_ids,
)


def test_defaults_fall_back_to_the_model_card(tmp_path):
    options = SamplingOptions.from_checkpoint(tmp_path)
    assert (options.temperature, options.top_p, options.top_k) == (
        MODEL_CARD_DEFAULTS["temperature"],
        MODEL_CARD_DEFAULTS["top_p"],
        MODEL_CARD_DEFAULTS["top_k"],
    )


def test_defaults_come_from_generation_config(tmp_path):
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"temperature": 0.7, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.0})
    )
    options = SamplingOptions.from_checkpoint(tmp_path)
    assert (options.temperature, options.top_p, options.top_k) == (0.7, 0.9, 20)
    assert options.repetition_penalty is None  # 1.0 is "off"


def test_do_sample_false_means_greedy():
    assert SamplingOptions.from_generation_config({"do_sample": False, "temperature": 1.0}).greedy


def test_overrides_replace_only_given_fields_and_are_validated():
    options = SamplingOptions().replace(temperature=0.0, top_k=None, seed=3)
    assert options.greedy and options.top_k == MODEL_CARD_DEFAULTS["top_k"] and options.seed == 3
    with pytest.raises(ValueError, match="top_p"):
        SamplingOptions().replace(top_p=1.5)
    with pytest.raises(TypeError, match="unknown"):
        SamplingOptions().replace(beam_width=4)


def test_eos_ids_prefer_the_generation_config_list():
    assert eos_token_ids({"eos_token_id": [1, 106, 50]}, {"eos_token_id": 1}) == {1, 106, 50}
    assert eos_token_ids({}, {"text_config": {"eos_token_id": 7}}) == {7}


def _logits(values):
    return mx.array([values], dtype=mx.float32)


def test_greedy_picks_the_argmax():
    sampler, processors = make_token_sampler(SamplingOptions(temperature=0.0))
    assert choose_token(_logits([0.1, 3.0, 2.0]), [], sampler, processors).item() == 1


def test_top_k_larger_than_the_vocabulary_is_a_no_op():
    sampler, _ = make_token_sampler(SamplingOptions(top_k=64), vocab_size=3)
    token = choose_token(_logits([0.0, 0.0, 0.0]), [], sampler, [])
    assert 0 <= token.item() < 3


def test_top_k_one_is_deterministic_whatever_the_seed():
    sampler, _ = make_token_sampler(SamplingOptions(temperature=1.0, top_k=1, top_p=1.0))
    picks = set()
    for seed in range(5):
        seed_random(seed)
        picks.add(choose_token(_logits([0.0, 1.0, 0.5, 0.2]), [], sampler, []).item())
    assert picks == {1}


def test_same_seed_gives_same_samples():
    sampler, _ = make_token_sampler(SamplingOptions(temperature=1.0, top_k=0, top_p=1.0))
    logits = _logits([0.0] * 50)

    def draw():
        return [choose_token(logits, [], sampler, []).item() for _ in range(8)]

    seed_random(11)
    first = draw()
    seed_random(11)
    assert draw() == first
    assert len(set(first)) > 1


def test_repetition_penalty_demotes_recent_tokens():
    options = SamplingOptions(temperature=0.0, repetition_penalty=10.0)
    sampler, processors = make_token_sampler(options)
    logits = _logits([1.0, 2.0, 1.5])
    assert choose_token(logits, [], sampler, processors).item() == 1
    assert choose_token(logits, [1], sampler, processors).item() == 2


def test_suppress_tokens_are_read_from_the_generation_config():
    assert suppress_token_ids({"suppress_tokens": [7, 3, 7]}) == [3, 7]
    assert suppress_token_ids({"suppress_tokens": 5}) == [5]
    assert suppress_token_ids({}) == [] == suppress_token_ids({"suppress_tokens": None})
    with pytest.raises(ValueError, match="suppress_tokens"):
        suppress_token_ids({"suppress_tokens": ["<eos>"]})


@pytest.mark.parametrize(
    "options",
    [
        SamplingOptions(temperature=0.0),
        SamplingOptions(temperature=1.0, top_p=1.0, top_k=0),
        SamplingOptions(temperature=2.0, top_k=3, top_p=1.0),
        SamplingOptions(temperature=1.0, top_p=0.5, top_k=0),
        SamplingOptions(temperature=1.0, min_p=0.2, top_k=0, top_p=1.0),
        SamplingOptions(temperature=1.0, repetition_penalty=1.3),
    ],
    ids=["greedy", "plain", "top_k", "top_p", "min_p", "repetition_penalty"],
)
def test_suppressed_tokens_are_never_chosen_in_any_sampling_mode(options):
    vocab = 32
    logits = mx.zeros((1, vocab)) + mx.arange(vocab) * 0.01
    logits[0, 5] = 9.0  # the suppressed ids are by far the likeliest
    logits[0, 9] = 8.5
    suppressor = TokenSuppressor([5, 9, 999], vocab)
    assert suppressor.token_ids == (5, 9)  # ids outside the vocabulary are ignored
    sampler, processors = make_token_sampler(options, vocab)
    seed_random(0)
    unsuppressed = {
        int(choose_token(logits, [1, 2], sampler, processors).item()) for _ in range(50)
    }
    assert unsuppressed & {5, 9}
    chosen = {
        int(choose_token(suppressor.apply(logits), [1, 2], sampler, processors).item())
        for _ in range(200)
    }
    assert not chosen & {5, 9}
    as_processor = choose_token(logits, mx.array([1]), sampler, [suppressor, *processors])
    assert int(as_processor.item()) not in (5, 9)
