"""Audio: decode, downmix, resample to the model rate, enforce the per-clip limit, cut 640-sample frames.

Files go through soundfile (WAV, FLAC, OGG, MP3, AIFF) and fall back to PyAV (M4A, AAC and
anything FFmpeg reads). Multichannel audio is averaged to mono, then resampled with soxr's
band-limited (anti-aliasing) HQ filter, padded/trimmed to ceil(n·target/orig) samples —
the same steps as transformers' soundfile loader, so file input matches the reference.

The model takes at most `audio_seq_length` frames per clip (750 × 40 ms = 30 s). Longer input
is never cut silently: the caller chooses `"error"` (default; raises `MediaTooLongError` whose
message offers the choices), `"trim"` (keep the first 30 s, with the user's consent) or
`"split"` (consecutive ≤30 s clips, each its own audio block in the prompt).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import soxr

from .errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLongError,
    UnsupportedMediaError,
    check_media_file,
    describe_source,
    format_duration,
)

LongAudioPolicy = Literal["error", "trim", "split"]
SAMPLE_RATE = 16_000
SAMPLES_PER_TOKEN = 640
MAX_CLIP_SECONDS = 30.0
MAX_SPLIT_SECONDS = 600.0  # "split" accepts up to 10 minutes (20 clips, 15k tokens)
MAX_FILE_BYTES = 1024 * 1024 * 1024
AUDIO_EXTENSIONS = {
    ".wav",
    ".wave",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".m4a",
    ".aac",
    ".aif",
    ".aiff",
    ".caf",
}


@dataclass(frozen=True)
class AudioFeatures:
    """One clip ready for the model."""

    input_features: np.ndarray  # [n_frames, samples_per_token] float32
    mask: np.ndarray  # [n_frames] bool, all True (the last frame is zero-padded, still valid)

    @property
    def num_soft_tokens(self) -> int:
        return int(self.mask.sum())


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr HQ) of a [n] or [n, channels] float waveform.

    The output has exactly ceil(n · target_rate / orig_rate) samples, as `librosa.load` and
    transformers' soundfile loader produce. The microphone path uses this too.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"Sample rates must be positive, got {orig_rate} -> {target_rate}.")
    if orig_rate == target_rate or waveform.shape[0] == 0:
        return np.ascontiguousarray(waveform)
    num_samples = math.ceil(waveform.shape[0] * target_rate / orig_rate)
    out = soxr.resample(waveform, orig_rate, target_rate, quality="HQ")
    if out.shape[0] < num_samples:
        pad = [(0, num_samples - out.shape[0])] + [(0, 0)] * (out.ndim - 1)
        out = np.pad(out, pad)
    return np.ascontiguousarray(out[:num_samples], dtype=np.float32)


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """[n], [n, channels] (or [channels, n] with few channels), any dtype -> mono float32 [n]."""
    array = np.asarray(samples)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        scale = float(max(abs(info.min), info.max))
        offset = (info.max + 1) / 2 if array.dtype.kind == "u" else 0.0
        array = (array.astype(np.float64) - offset) / scale
    array = array.astype(np.float32, copy=False)
    if array.ndim == 2:
        if array.shape[0] <= 8 and array.shape[1] > array.shape[0]:
            array = array.T  # [channels, n] -> [n, channels]
        if array.shape[1] == 0:  # no channels (a damaged header): no samples either
            return np.zeros(0, dtype=np.float32)
        array = array.mean(axis=1) if array.shape[1] > 1 else array[:, 0]
    elif array.ndim != 1:
        raise UnsupportedMediaError(f"Audio samples must be 1-D or 2-D, got shape {array.shape}.")
    return np.ascontiguousarray(array, dtype=np.float32)


def check_samples(waveform: np.ndarray, name: str, source: str | None = None) -> None:
    """Reject empty audio and NaN/infinite samples with a UI-ready message."""
    if waveform.size == 0:
        raise CorruptMediaError(f"{name} contains no audio.", source=source)
    if not np.isfinite(waveform).all():
        raise CorruptMediaError(
            f"{name} contains invalid samples (NaN or infinite values).", source=source
        )


def probe_duration(path: str | os.PathLike) -> float | None:
    """Duration of an audio file in seconds without decoding it (None when unknown)."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else None
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / 1_000_000
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except Exception:  # noqa: BLE001 - probing only; decoding reports the real error
        return None
    return None


def _decode_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as fh:
        rate = fh.samplerate
        frames = -1 if max_seconds is None else int(math.ceil(max_seconds * rate))
        data = fh.read(frames=frames, dtype="float32", always_2d=True)
    return data, rate


def _decode_pyav(
    path: Path, max_seconds: float | None, stream_index: int = 0
) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise UnsupportedMediaError("no audio stream")
        stream = container.streams.audio[stream_index]
        rate = stream.codec_context.sample_rate or stream.rate
        limit = None if max_seconds is None else int(math.ceil(max_seconds * rate))
        total = 0
        converter = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            for converted in converter.resample(frame):
                block = converted.to_ndarray()  # [channels, n]
                chunks.append(block.T)
                total += block.shape[1]
            if limit is not None and total >= limit:
                break
        for converted in converter.resample(None):
            chunks.append(converted.to_ndarray().T)
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), int(rate or SAMPLE_RATE)
    data = np.concatenate(chunks, axis=0)
    if limit is not None:
        data = data[:limit]
    return data, int(rate)


def decode_audio_file(
    path: str | os.PathLike, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode a file to ([n, channels] float32, sample_rate); at most `max_seconds` when given."""
    path = Path(path)
    name = describe_source(path, "The audio")
    check_media_file(path, f"The audio file {name}", MAX_FILE_BYTES)
    try:
        return _decode_soundfile(path, max_seconds)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    try:
        return _decode_pyav(path, max_seconds)
    except MediaError:
        raise
    except Exception as exc:  # av.error.FFmpegError and friends
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            raise CorruptMediaError(
                f"The audio file {name} is damaged and cannot be read.", source=str(path)
            ) from exc
        raise UnsupportedMediaError(
            f"The file {name} is not an audio file we can read; use WAV, FLAC, OGG, MP3, M4A or AAC.",
            source=str(path),
        ) from exc


def too_long_error(
    name: str, duration_s: float, max_s: float, source: str | None = None
) -> MediaTooLongError:
    """The error for audio over the per-clip limit, offering the two ways forward."""
    return MediaTooLongError(
        f"{name} is {format_duration(duration_s)} long; the model takes at most {format_duration(max_s)} "
        f"of audio per clip. Trim it to the first {format_duration(max_s)} or split it into "
        f"{format_duration(max_s)} parts.",
        source=source,
        limit=f"{max_s:g} s",
        duration_s=duration_s,
        max_duration_s=max_s,
    )


def load_audio(
    source: Any,
    sampling_rate: int = SAMPLE_RATE,
    *,
    max_clip_seconds: float = MAX_CLIP_SECONDS,
    policy: LongAudioPolicy = "error",
    max_split_seconds: float = MAX_SPLIT_SECONDS,
) -> list[np.ndarray]:
    """Decode `source` to mono float32 at `sampling_rate`, as ≤`max_clip_seconds` clips per `policy`.

    `source`: a path, a `(samples, sample_rate)` pair (e.g. microphone PCM) or a bare array
    already at `sampling_rate` (as transformers accepts). Returns one clip unless `policy`
    is "split".
    """
    if policy not in ("error", "trim", "split"):
        raise ValueError(f"Unknown long-audio policy {policy!r}; use 'error', 'trim' or 'split'.")
    src = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    name = f"The audio file {describe_source(source, '')}" if src is not None else "The recording"
    hard_limit = max_split_seconds if policy == "split" else max_clip_seconds
    if src is not None:
        duration = probe_duration(src)
        if duration is not None and duration > hard_limit + 1e-6 and policy != "trim":
            raise too_long_error(
                name, duration, max_clip_seconds if policy == "error" else hard_limit, src
            )
        decode_limit = max_clip_seconds if policy == "trim" else hard_limit + 1.0
        data, rate = decode_audio_file(src, max_seconds=decode_limit)
        waveform = to_mono_float(data)
    else:
        if isinstance(source, tuple) and len(source) == 2:
            samples, rate = source
        elif isinstance(source, np.ndarray):
            samples, rate = source, sampling_rate
        else:
            raise UnsupportedMediaError(f"Unsupported audio input of type {type(source).__name__}.")
        waveform = to_mono_float(samples)
        rate = int(rate)
    check_samples(waveform, name, src)
    waveform = resample(waveform, rate, sampling_rate)
    return split_clip(
        waveform, sampling_rate, name, policy, max_clip_seconds, max_split_seconds, src
    )


def split_clip(
    waveform: np.ndarray,
    sampling_rate: int,
    name: str,
    policy: LongAudioPolicy,
    max_clip_seconds: float = MAX_CLIP_SECONDS,
    max_split_seconds: float = MAX_SPLIT_SECONDS,
    source: str | None = None,
) -> list[np.ndarray]:
    """Apply the long-audio policy to a decoded mono waveform."""
    max_samples = int(round(max_clip_seconds * sampling_rate))
    duration = waveform.shape[0] / sampling_rate
    if waveform.shape[0] <= max_samples:
        return [waveform]
    if policy == "trim":
        return [waveform[:max_samples]]
    if policy == "split" and duration <= max_split_seconds + 1e-6:
        return [waveform[i : i + max_samples] for i in range(0, waveform.shape[0], max_samples)]
    limit = max_clip_seconds if policy == "error" else max_split_seconds
    raise too_long_error(name, duration, limit, source)


def frame_audio(waveform: np.ndarray, samples_per_token: int = SAMPLES_PER_TOKEN) -> AudioFeatures:
    """Right-pad to a multiple of `samples_per_token` and reshape to frames (as the reference)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    pad = (-waveform.shape[0]) % samples_per_token
    if pad:
        waveform = np.pad(waveform, (0, pad))
    n = waveform.shape[0] // samples_per_token
    features = waveform.reshape(n, samples_per_token).astype(np.float32, copy=False)
    return AudioFeatures(input_features=features, mask=np.ones(n, dtype=bool))


def batch_features(clips: list[AudioFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """Pad clips to the longest with zero frames: ([N, T, D] float32, [N, T] bool)."""
    longest = max(c.input_features.shape[0] for c in clips)
    dim = clips[0].input_features.shape[1]
    features = np.zeros((len(clips), longest, dim), dtype=np.float32)
    mask = np.zeros((len(clips), longest), dtype=bool)
    for i, clip in enumerate(clips):
        n = clip.input_features.shape[0]
        features[i, :n] = clip.input_features
        mask[i, :n] = clip.mask
    return features, mask
