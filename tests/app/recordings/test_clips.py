"""Long recordings read clip by clip: the checkpoint's clip length, start times, streaming."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile

from app.recordings import clip_spans, format_clock, iter_clips, probe_recording, recording_content
from mlx_model.processing.audio import resample
from mlx_model.processing.errors import CorruptMediaError, MediaTooLongError


def test_ten_minute_recording_becomes_consecutive_clips_of_the_checkpoint_length(
    spoken_recording, processor_config
):
    clip_s = processor_config.max_audio_seconds
    rate = processor_config.sampling_rate

    clips = list(iter_clips(spoken_recording, clip_seconds=clip_s, sampling_rate=rate))

    duration = probe_recording(spoken_recording)
    assert duration == pytest.approx(600.0)
    assert len(clips) == len(clip_spans(duration, clip_s)) == 20
    assert [c.start_s for c in clips] == [i * clip_s for i in range(20)]
    assert all(len(c.waveform) == round(clip_s * rate) for c in clips)


def test_streamed_clips_match_resampling_the_whole_recording(spoken_recording):
    data, native = soundfile.read(str(spoken_recording), dtype="float32", frames=22050 * 95)
    excerpt = spoken_recording.parent / "excerpt.wav"
    soundfile.write(str(excerpt), data, native, subtype="FLOAT")

    clips = list(iter_clips(excerpt, clip_seconds=30.0, sampling_rate=16_000))

    whole = resample(data, native, 16_000)
    joined = np.concatenate([c.waveform for c in clips])
    assert len(joined) == len(whole)  # ceil(n · 16000 / 22050), as the one-shot path
    assert [len(c.waveform) for c in clips] == [480_000, 480_000, 480_000, 80_000]
    assert np.max(np.abs(joined - whole)) < 1e-3


def test_reading_never_holds_the_whole_recording(spoken_recording):
    decoded_bytes = 600 * 16_000 * 4

    tracemalloc.start()
    try:
        for _ in iter_clips(spoken_recording, clip_seconds=30.0):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < decoded_bytes / 4  # a few clips in flight, never the whole


def test_clip_length_follows_the_given_limit(spoken_recording):
    clips = list(iter_clips(spoken_recording, clip_seconds=45.0))

    assert len(clips) == 14 and clips[1].start_s == 45.0 and clips[-1].duration_s == 15.0


def test_nan_samples_are_reported_with_their_time(tmp_path):
    data = np.zeros(16_000 * 70, np.float32)
    data[16_000 * 65] = np.nan
    path = tmp_path / "bad.wav"
    soundfile.write(str(path), data, 16_000, subtype="FLOAT")

    clips = iter_clips(path, clip_seconds=30.0)
    assert next(clips).start_s == 0.0
    next(clips)
    with pytest.raises(CorruptMediaError, match="near 01:00"):
        next(clips)


def test_recording_over_the_length_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    import app.recordings.clips as clips_module

    path = tmp_path / "long.wav"
    soundfile.write(str(path), np.zeros(16_000 * 3, np.float32), 16_000)
    monkeypatch.setattr(clips_module, "MAX_RECORDING_SECONDS", 2.0)

    with pytest.raises(MediaTooLongError, match="is 3 s long; recordings can be at most 2 s"):
        next(iter_clips(path, clip_seconds=30.0))


def test_clock_shows_hours_only_past_an_hour():
    assert [format_clock(s) for s in (0, 750, 3599.9, 3723)] == [
        "00:00",
        "12:30",
        "59:59",
        "1:02:03",
    ]


def test_one_prompt_content_puts_each_start_time_before_its_clip(
    spoken_recording, tiny_checkpoint, processor_config
):
    from mlx_model.processing import Processor

    processor = Processor.from_pretrained(tiny_checkpoint)
    clips = list(iter_clips(spoken_recording, clip_seconds=processor_config.max_audio_seconds))
    content = recording_content(clips, name="meeting.wav", duration_s=600.0)

    out = processor.apply_chat_template(
        [{"role": "user", "content": [*content, {"type": "text", "text": "Summarize."}]}],
        return_prompt=True,
    )

    special = processor.tokenizer.special
    prompt = out["prompt"]
    starts = [prompt.index(f"{format_clock(c.start_s)}{special.boa_token}") for c in clips]
    assert starts == sorted(starts) and len(starts) == 20
    assert out["input_features"].shape[0] == 20
    per_clip = processor_config.audio_seq_length
    assert int((out["mm_token_type_ids"] == 3).sum()) == 20 * per_clip
