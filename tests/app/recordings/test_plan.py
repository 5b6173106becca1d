"""The fit decisions: pure functions of token counts from the checkpoint's processor config."""

from __future__ import annotations

from app.recordings import (
    PromptBudget,
    clip_tokens,
    decide_recording,
    decide_transcript,
    recording_tokens,
)


def test_recording_tokens_count_each_clip_with_its_time_and_markers(processor_config):
    cfg = processor_config
    per_clip = clip_tokens(round(cfg.max_audio_seconds * cfg.sampling_rate), cfg.samples_per_token)

    tokens = recording_tokens(
        600.0,
        clip_seconds=cfg.max_audio_seconds,
        sampling_rate=cfg.sampling_rate,
        samples_per_token=cfg.samples_per_token,
        label_tokens=3,
    )

    assert per_clip == cfg.audio_seq_length
    assert tokens == 20 * (per_clip + 2 + 3)


def test_a_short_last_clip_counts_only_its_own_frames():
    tokens = recording_tokens(
        61.0, clip_seconds=30.0, sampling_rate=16_000, samples_per_token=640, label_tokens=0
    )

    assert tokens == 750 + 750 + 25 + 3 * 2


def test_recording_goes_into_the_prompt_only_when_it_fits_what_the_plan_leaves():
    needed = 15_100
    roomy = PromptBudget(context_tokens=32_768, used_tokens=1_000, reserve_tokens=2_048)
    tight = PromptBudget(context_tokens=16_384, used_tokens=1_000, reserve_tokens=2_048)

    assert decide_recording(needed, roomy).mode == "prompt"
    decision = decide_recording(needed, tight)
    assert (decision.mode, decision.available, decision.fits) == ("transcribe", 13_336, False)


def test_transcript_is_split_when_even_it_does_not_fit():
    budget = PromptBudget(context_tokens=8_192, used_tokens=200, reserve_tokens=1_000)

    assert decide_transcript(6_992, budget).mode == "whole"
    assert decide_transcript(6_993, budget).mode == "map_reduce"


def test_budget_never_goes_negative():
    assert PromptBudget(context_tokens=100, used_tokens=500).available == 0
