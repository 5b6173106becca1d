"""Long videos: one-minute segments each sampled as one clip by the checkpoint's rule,
timestamps, sound clips, and the pure choice of frames and budget."""

from __future__ import annotations

import numpy as np
import pytest

from app.recordings.video import (
    choose_fidelity,
    frame_tokens,
    iter_segments,
    plan_segments,
    probe_video,
    video_tokens,
)
from mlx_model.processing.image import SUPPORTED_BUDGETS, resize_for_budget
from mlx_model.processing.video import FrameSampling


def test_segments_are_a_minute_each_sampled_by_the_clip_rule():
    rule = FrameSampling(num_frames=32)
    segments = plan_segments(9000, 30.0, sampling=rule)  # 5 minutes at 30 fps

    assert len(segments) == 5
    assert [(s.start_s, s.end_s) for s in segments] == [
        (60.0 * k, 60.0 * (k + 1)) for k in range(5)
    ]
    for k, segment in enumerate(segments):
        # exactly the frames a one-minute clip of its own gets: 32 spread evenly
        assert np.array_equal(segment.frame_indices, 1800 * k + rule.indices(1800, 30.0))
    assert segments[1].timestamps[:2] == [60.0, 60.0 + 1800 // 32 / 30.0]


def test_a_short_last_segment_is_sampled_as_its_own_clip():
    segments = plan_segments(int(150.5 * 24), 24.0, sampling=FrameSampling(num_frames=32))

    assert [len(s.frame_indices) for s in segments] == [32, 32, 32]
    last = segments[-1]
    assert last.end_s == pytest.approx(150.5)
    assert last.frame_indices[1] - last.frame_indices[0] == int(30.5 * 24) // 32


def test_a_checkpoint_that_samples_by_rate_gets_that_rate_per_segment():
    segments = plan_segments(int(150.5 * 24), 24.0, sampling=FrameSampling(fps=1.0))

    assert [len(s.frame_indices) for s in segments] == [60, 60, 30]
    assert segments[1].timestamps[:2] == [60.0, 61.0]


def test_segment_frames_are_the_seconds_they_are_stamped_with(five_minute_video):
    segments = plan_segments(600, 2.0, sampling=FrameSampling(num_frames=32))
    third = next(
        d for d in iter_segments(five_minute_video, segments, budget=70) if d.segment.index == 2
    )

    for frame, t in zip(third.clip.frames, third.clip.timestamps, strict=True):
        expected = 20 + 20 * (int(t) % 11)
        assert abs(float(frame.mean()) - expected) < 8


def test_frames_are_decoded_at_the_size_the_processor_would_use(five_minute_video):
    info = probe_video(five_minute_video)
    (first,) = list(
        iter_segments(
            five_minute_video, plan_segments(info.total_frames, info.native_fps)[:1], budget=70
        )
    )

    frame = first.clip.frames[0]
    original = np.zeros((info.height, info.width, 3), np.uint8)
    assert frame.shape == resize_for_budget(original, 70).shape
    assert resize_for_budget(frame, 70).shape == frame.shape  # resizing again changes nothing


RULE = FrameSampling(num_frames=32)


def test_fidelity_keeps_the_checkpoint_sampling_when_it_fits():
    per_frame = lambda budget: budget  # noqa: E731 - a square-ish frame uses its whole budget
    total, fps = 30 * 60 * 30, 30.0  # 30 minutes at 30 fps
    full = video_tokens(plan_segments(total, fps, sampling=RULE), 70)

    choice = choose_fidelity(
        total_frames=total,
        native_fps=fps,
        available_tokens=full,
        tokens_per_frame=per_frame,
        default_budget=70,
        budgets=SUPPORTED_BUDGETS,
        sampling=RULE,
    )

    assert (choice.sampling, choice.budget, choice.reduced) == (RULE, 70, False)
    assert choice.message(RULE, 70) == ""


def test_fidelity_lowers_the_budget_before_the_frames():
    per_frame = lambda budget: budget  # noqa: E731
    total, fps = 10 * 60 * 25, 25.0
    at_140 = video_tokens(plan_segments(total, fps, sampling=RULE), 140)
    at_70 = video_tokens(plan_segments(total, fps, sampling=RULE), 70)

    choice = choose_fidelity(
        total_frames=total,
        native_fps=fps,
        available_tokens=at_140 - 1,
        tokens_per_frame=per_frame,
        default_budget=140,
        budgets=SUPPORTED_BUDGETS,
        sampling=RULE,
    )

    assert (choice.sampling, choice.budget, choice.tokens) == (RULE, 70, at_70)
    assert (
        choice.message(RULE, 140)
        == "The video was sampled with image budget 70 instead of 140 to fit the context."
    )


def test_fidelity_takes_fewer_frames_then_gives_up():
    per_frame = lambda budget: budget  # noqa: E731
    total, fps = 60 * 60 * 30, 30.0  # an hour: 60 segments
    audio = 60 * 1_520

    half = choose_fidelity(
        total_frames=total, native_fps=fps, available_tokens=200_000, tokens_per_frame=per_frame,
        default_budget=70, budgets=SUPPORTED_BUDGETS, sampling=RULE, audio_tokens=audio,
    )  # fmt: skip
    none = choose_fidelity(
        total_frames=total, native_fps=fps, available_tokens=90_000, tokens_per_frame=per_frame,
        default_budget=70, budgets=SUPPORTED_BUDGETS, sampling=RULE, audio_tokens=audio,
    )  # fmt: skip

    assert (half.sampling, half.budget) == (FrameSampling(num_frames=16), 70)
    assert half.tokens <= 200_000
    assert "16 frames per segment instead of 32 frames per segment" in half.message(RULE, 70)
    assert none is None  # describe it segment by segment


def test_fidelity_of_a_rate_rule_lowers_the_rate():
    per_frame = lambda budget: budget  # noqa: E731
    total, fps = 60 * 60 * 30, 30.0
    rate = FrameSampling(fps=1.0)

    choice = choose_fidelity(
        total_frames=total, native_fps=fps, available_tokens=300_000, tokens_per_frame=per_frame,
        default_budget=70, budgets=SUPPORTED_BUDGETS, sampling=rate, audio_tokens=60 * 1_520,
    )  # fmt: skip

    assert choice.sampling == FrameSampling(fps=0.5)
    assert "1 frame every 2 s instead of 1 frame per second" in choice.message(rate, 70)


def test_frame_tokens_follow_the_processor_resize():
    from mlx_model.processing.image import preprocess_image

    frame = np.zeros((720, 1280, 3), np.uint8)

    assert frame_tokens(720, 1280, 70) == preprocess_image(frame, 70).num_soft_tokens
