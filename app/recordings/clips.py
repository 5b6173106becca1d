"""Long recordings read clip by clip: never decoded whole, duration probed first.

`iter_clips(path, clip_seconds=...)` streams any audio file (or a video's sound track) from
disk: soundfile for WAV/FLAC/OGG/MP3, PyAV for the rest. Blocks are mixed to mono and
resampled continuously to the model's rate (soxr's HQ filter as a stream, so clip
boundaries carry no filter edges), then cut into consecutive clips of exactly
`clip_seconds` (the last one shorter), each with its start time. The clip length is the
checkpoint's (`ProcessorConfig.max_audio_seconds`); nothing here assumes 30 s.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlx_model.processing.audio import probe_duration
from mlx_model.processing.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLongError,
    UnsupportedMediaError,
    check_media_file,
    format_duration,
)

MAX_RECORDING_SECONDS = 24 * 3600.0
MAX_RECORDING_BYTES = 32 * 1024**3
READ_SECONDS = 2.0  # decoded per read: memory stays at a few seconds of audio


@dataclass(frozen=True)
class AudioClip:
    """One clip of a long recording, mono float32 at `sample_rate`."""

    index: int  # 0-based
    start_s: float
    waveform: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def block(self) -> dict:
        """The clip as a chat content block the processor takes."""
        return {"type": "audio", "audio": (self.waveform, self.sample_rate)}


def format_clock(seconds: float) -> str:
    """`12:30` under an hour, `1:02:03` from an hour on (whole seconds, rounded down)."""
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def clip_spans(duration_s: float, clip_seconds: float) -> list[tuple[float, float]]:
    """(start, end) of the consecutive clips a recording of `duration_s` is cut into."""
    if clip_seconds <= 0:
        raise ValueError("clip_seconds must be positive")
    count = max(1, math.ceil(duration_s / clip_seconds - 1e-9))
    return [(i * clip_seconds, min(duration_s, (i + 1) * clip_seconds)) for i in range(count)]


def probe_recording(path: str | os.PathLike[str], *, name: str | None = None) -> float | None:
    """The recording's duration in seconds from its header (None when the header does not say).

    Raises the media path's errors for a missing, empty or oversized file, and
    `MediaTooLongError` past `MAX_RECORDING_SECONDS`.
    """
    path = Path(path)
    what = f"The recording “{name or path.name}”"
    check_media_file(path, what, MAX_RECORDING_BYTES)
    duration = probe_duration(path)
    if duration is not None and duration > MAX_RECORDING_SECONDS:
        raise MediaTooLongError(
            f"{what} is {format_duration(duration)} long; recordings can be at most "
            f"{format_duration(MAX_RECORDING_SECONDS)}.",
            source=str(path),
            limit=f"{MAX_RECORDING_SECONDS:g} s",
            duration_s=duration,
            max_duration_s=MAX_RECORDING_SECONDS,
        )
    return duration


def _soundfile_blocks(path: Path, name: str) -> tuple[int, Iterator[np.ndarray]] | None:
    import soundfile as sf

    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    rate = int(handle.samplerate)

    def blocks() -> Iterator[np.ndarray]:
        with handle:
            frames = max(1, int(READ_SECONDS * rate))
            while True:
                try:
                    data = handle.read(frames=frames, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:  # cut short or damaged
                    raise CorruptMediaError(
                        f"{name} is damaged and cannot be read past this point.",
                        source=str(path),
                    ) from exc
                if not len(data):
                    return
                yield data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]

    return rate, blocks()


def _pyav_blocks(path: Path, name: str) -> tuple[int, Iterator[np.ndarray]]:
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # noqa: BLE001 - av.error.FFmpegError and friends
        raise UnsupportedMediaError(
            f"{name} is not audio we can read; use WAV, FLAC, OGG, MP3, M4A or a video with sound.",
            source=str(path),
        ) from exc
    if not container.streams.audio:
        container.close()
        raise UnsupportedMediaError(f"{name} has no sound track.", source=str(path))
    stream = container.streams.audio[0]
    rate = int(stream.codec_context.sample_rate or stream.rate)

    def blocks() -> Iterator[np.ndarray]:
        converter = av.AudioResampler(format="fltp")
        try:
            for frame in container.decode(stream):
                for converted in converter.resample(frame):
                    yield converted.to_ndarray().mean(axis=0).astype(np.float32)
            for converted in converter.resample(None):
                yield converted.to_ndarray().mean(axis=0).astype(np.float32)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"{name} is damaged and cannot be read past this point.", source=str(path)
            ) from exc
        finally:
            container.close()

    return rate, blocks()


def read_blocks(
    path: str | os.PathLike[str], *, name: str | None = None
) -> tuple[int, Iterator[np.ndarray]]:
    """(native rate, mono float32 blocks of a couple of seconds) of any audio file, read lazily."""
    path = Path(path)
    what = f"The recording “{name or path.name}”"
    return _soundfile_blocks(path, what) or _pyav_blocks(path, what)


def clips_from_samples(
    samples: np.ndarray, rate: int, *, clip_seconds: float, sampling_rate: int = 16_000
) -> list[AudioClip]:
    """Consecutive clips of audio already in memory (e.g. an API request's), mono at `sampling_rate`."""
    from mlx_model.processing.audio import resample, to_mono_float

    waveform = to_mono_float(np.asarray(samples))
    if int(rate) != sampling_rate:
        waveform = resample(waveform, int(rate), sampling_rate)
    size = int(round(clip_seconds * sampling_rate))
    return [
        AudioClip(i, start / sampling_rate, waveform[start : start + size], sampling_rate)
        for i, start in enumerate(range(0, max(1, len(waveform)), size))
    ]


def iter_clips(
    path: str | os.PathLike[str],
    *,
    clip_seconds: float,
    sampling_rate: int = 16_000,
    name: str | None = None,
) -> Iterator[AudioClip]:
    """Consecutive clips of at most `clip_seconds` at `sampling_rate`, read as they are needed."""
    import soxr

    path = Path(path)
    what = f"The recording “{name or path.name}”"
    probe_recording(path, name=name)
    opened = _soundfile_blocks(path, what) or _pyav_blocks(path, what)
    rate, blocks = opened
    clip_samples = int(round(clip_seconds * sampling_rate))
    if clip_samples <= 0:
        raise ValueError("clip_seconds must be positive")
    stream = soxr.ResampleStream(rate, sampling_rate, 1, dtype="float32", quality="HQ")
    pending: list[np.ndarray] = []
    pending_samples = 0
    index = 0
    produced = 0
    native = 0

    def cut(final: bool) -> Iterator[AudioClip]:
        nonlocal pending, pending_samples, index, produced
        while pending_samples >= clip_samples or (final and pending_samples):
            joined = np.concatenate(pending)
            take = min(clip_samples, len(joined))
            clip, rest = joined[:take], joined[take:]
            pending, pending_samples = ([rest] if len(rest) else []), len(rest)
            if not np.isfinite(clip).all():
                raise CorruptMediaError(
                    f"{what} contains invalid samples (NaN or infinite values) near "
                    f"{format_clock(produced / sampling_rate)}.",
                    source=str(path),
                )
            yield AudioClip(index, produced / sampling_rate, clip, sampling_rate)
            index += 1
            produced += take

    try:
        for block in blocks:
            native += len(block)
            out = block if rate == sampling_rate else stream.resample_chunk(block)
            if len(out):
                pending.append(np.asarray(out, dtype=np.float32))
                pending_samples += len(out)
            yield from cut(final=False)
        if rate != sampling_rate:
            # Flush the filter, then keep exactly ceil(n · target / rate) samples in all,
            # as the one-shot `resample` does.
            tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                pending.append(np.asarray(tail, dtype=np.float32))
                pending_samples += len(tail)
            wanted = math.ceil(native * sampling_rate / rate) - produced
            if pending_samples != wanted:
                joined = np.concatenate(pending) if pending else np.zeros(0, np.float32)
                joined = np.pad(joined[: max(0, wanted)], (0, max(0, wanted - len(joined))))
                pending, pending_samples = [joined], len(joined)
        yield from cut(final=True)
    except MediaError:
        raise
    if native == 0:
        raise CorruptMediaError(f"{what} contains no audio.", source=str(path))
