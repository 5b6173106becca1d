"""Video: decode MP4/MOV/M4V/WebM with PyAV, sample 1 frame per second, at most 60 s.

Frame indices follow transformers' `default_sample_indices_fn` with `fps=1`:
n = max(1, int(T / native_fps · fps)) and index_i = i · T // n; each frame's timestamp is
index / native_fps, shown to the model as `MM:SS`. (transformers' own default is 32 frames
uniformly, which needs ≥32 frames and ignores the clip length; we pass fps=1 to it in
parity tests.) Frames are resized and patchified like images with the video budget (70 by
default, from the checkpoint's video processor config). The clip's audio track can be
extracted as an ordinary audio input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .audio import SAMPLE_RATE, LongAudioPolicy, check_samples, resample, split_clip, to_mono_float
from .errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
    describe_source,
    format_duration,
)
from .image import ImageFeatures, patchify, resize_for_budget

LongVideoPolicy = Literal["error", "trim"]
MAX_VIDEO_SECONDS = 60.0
DEFAULT_FPS = 1.0
MAX_FILE_BYTES = 4 * 1024 * 1024 * 1024
MAX_FRAME_PIXELS = 8192 * 8192
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}
_FORMATS = "MP4, MOV, M4V or WebM"


@dataclass(frozen=True)
class VideoClip:
    """Sampled frames of one video and where they came from."""

    frames: Any  # [n, H, W, 3] uint8, or a list of `transform(frame)` results
    frame_indices: np.ndarray  # [n] int64, indices into the native frame sequence
    native_fps: float
    total_frames: int
    duration_s: float

    @property
    def timestamps(self) -> list[float]:
        """Seconds of each sampled frame (index / native fps), as transformers' `VideoMetadata`."""
        return [int(i) / self.native_fps for i in self.frame_indices]


def sample_indices(total_frames: int, native_fps: float, fps: float = DEFAULT_FPS) -> np.ndarray:
    """Frame indices for `fps` frames per second (transformers' `default_sample_indices_fn`)."""
    n = max(1, int(total_frames / native_fps * fps))
    n = min(n, total_frames)
    return np.arange(n, dtype=np.int64) * total_frames // n


def format_timestamp(seconds: float) -> str:
    """`MM:SS` as the reference prompt shows it."""
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _open(path: Path, name: str):
    import av

    if not path.exists():
        raise MediaError(f"The video {name} could not be found.", source=str(path))
    size = path.stat().st_size
    if size == 0:
        raise CorruptMediaError(f"The video {name} is empty (0 bytes).", source=str(path))
    if size > MAX_FILE_BYTES:
        raise MediaTooLargeError(
            f"The video {name} is {size / 2**30:.1f} GB; the limit is {MAX_FILE_BYTES / 2**30:.0f} GB.",
            source=str(path),
            limit=f"{MAX_FILE_BYTES} bytes",
        )
    try:
        return av.open(str(path))
    except Exception as exc:  # av.error.InvalidDataError and friends
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            raise CorruptMediaError(
                f"The video {name} is damaged and cannot be read.", source=str(path)
            ) from exc
        raise UnsupportedMediaError(
            f"The file {name} is not a video we can read; use {_FORMATS}.", source=str(path)
        ) from exc


def _video_stream(container, name: str, src: str):
    if not container.streams.video:
        raise CorruptMediaError(
            f"The video {name} contains no frames (no picture track).", source=src
        )
    stream = container.streams.video[0]
    codec = stream.codec_context
    if codec is None or not getattr(codec, "name", None) or codec.type != "video":
        tag = getattr(stream, "codec_tag", "") or "unknown"
        raise UnsupportedMediaError(
            f"The video {name} uses a codec ({tag}) we cannot decode; use H.264, HEVC, VP8/VP9 or AV1 in {_FORMATS}.",
            source=src,
        )
    if (stream.width or 0) * (stream.height or 0) > MAX_FRAME_PIXELS:
        raise MediaTooLargeError(
            f"The video {name} is {stream.width}×{stream.height}; the limit is 8192×8192 per frame.",
            source=src,
            limit=f"{MAX_FRAME_PIXELS} pixels",
        )
    return stream


def _count_frames(container, stream) -> int:
    count = 0
    for packet in container.demux(stream):
        if packet.size:
            count += 1
    container.seek(0)
    return count


def _decode_at(
    container, stream, wanted: np.ndarray, transform: Callable[[np.ndarray], Any] | None
) -> tuple[list[Any], int]:
    """Decode sequentially, keeping frames at `wanted` indices; returns (frames, frames seen).

    Kept frames go through `transform` (e.g. the budget resize) on worker threads while
    decoding continues, so full-resolution frames never pile up in memory.
    """
    targets = {int(i): k for k, i in enumerate(wanted)}
    out: list[Any] = [None] * len(wanted)
    last = int(wanted[-1])
    seen = 0
    stream.thread_type = "AUTO"
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        for i, frame in enumerate(container.decode(stream)):
            seen = i + 1
            k = targets.get(i)
            if k is not None:
                rgb = frame.to_ndarray(format="rgb24")
                out[k] = pool.submit(transform, rgb) if transform is not None else rgb
            if i >= last:
                break
        results = [f.result() if isinstance(f, Future) else f for f in out]
    return [f for f in results if f is not None], seen


def load_video(
    path: str | os.PathLike,
    *,
    fps: float = DEFAULT_FPS,
    max_seconds: float = MAX_VIDEO_SECONDS,
    policy: LongVideoPolicy = "error",
    transform: Callable[[np.ndarray], Any] | None = None,
) -> VideoClip:
    """Decode the frames of `path` sampled at `fps`; longer than `max_seconds` raises unless `policy="trim"`.

    `transform`, when given, maps each kept RGB frame (e.g. to its budget size) as it is
    decoded; `frames` then holds the transformed frames.
    """
    import av

    if policy not in ("error", "trim"):
        raise ValueError(f"Unknown long-video policy {policy!r}; use 'error' or 'trim'.")
    path = Path(path)
    name = describe_source(path, "The video")
    src = str(path)
    container = _open(path, name)
    try:
        stream = _video_stream(container, name, src)
        native_fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
        try:
            total = int(stream.frames) or _count_frames(container, stream)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"The video {name} is damaged and cannot be read.", source=src
            ) from exc
        if total <= 0:
            raise CorruptMediaError(f"The video {name} contains no frames.", source=src)
        duration = total / native_fps
        if duration > max_seconds + 1e-6:
            if policy == "error":
                raise MediaTooLongError(
                    f"The video {name} is {format_duration(duration)} long; the model takes at most "
                    f"{format_duration(max_seconds)} of video. Trim it to the first {format_duration(max_seconds)}.",
                    source=src,
                    limit=f"{max_seconds:g} s",
                    duration_s=duration,
                    max_duration_s=max_seconds,
                )
            total = int(math.floor(max_seconds * native_fps))
            duration = total / native_fps
        wanted = sample_indices(total, native_fps, fps)
        try:
            frames, seen = _decode_at(container, stream, wanted, transform)
            if len(frames) < len(wanted) and seen > 0:
                # The header over-counted frames: resample over the frames that really exist.
                total = seen
                wanted = sample_indices(total, native_fps, fps)
                container.seek(0)
                frames, seen = _decode_at(container, stream, wanted, transform)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"The video {name} is damaged and cannot be read.", source=src
            ) from exc
        if not frames:
            raise CorruptMediaError(
                f"The video {name} contains no frames we could decode.", source=src
            )
        return VideoClip(
            frames=np.stack(frames) if transform is None else frames,
            frame_indices=wanted[: len(frames)],
            native_fps=native_fps,
            total_frames=total,
            duration_s=duration,
        )
    finally:
        container.close()


def extract_audio_track(
    path: str | os.PathLike,
    sampling_rate: int = SAMPLE_RATE,
    *,
    policy: LongAudioPolicy = "error",
    max_clip_seconds: float = 30.0,
    max_seconds: float = MAX_VIDEO_SECONDS,
) -> list[np.ndarray] | None:
    """The video's first audio track as mono clips at `sampling_rate` (None when it has no sound)."""
    from .audio import _decode_pyav

    path = Path(path)
    name = describe_source(path, "The video")
    container = _open(path, name)
    try:
        has_audio = bool(container.streams.audio)
    finally:
        container.close()
    if not has_audio:
        return None
    try:
        data, rate = _decode_pyav(path, max_seconds)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a damaged track
        raise CorruptMediaError(
            f"The sound of the video {name} is damaged and cannot be read.", source=str(path)
        ) from exc
    waveform = to_mono_float(data)
    if waveform.size == 0:
        return None
    check_samples(waveform, f"The sound of the video {name}", str(path))
    waveform = resample(waveform, rate, sampling_rate)
    return split_clip(
        waveform,
        sampling_rate,
        f"The sound of the video {name}",
        policy,
        max_clip_seconds,
        source=str(path),
    )


def preprocess_frames(
    frames: np.ndarray,
    max_soft_tokens: int = 70,
    patch_size: int = 16,
    pooling_kernel_size: int = 3,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Resize and patchify frames: ([n, budget, D] float32, [n, budget, 2] int64, tokens per frame)."""
    pixel_values, positions, tokens = [], [], 0
    for frame in frames:
        resized = resize_for_budget(frame, max_soft_tokens, patch_size, pooling_kernel_size)
        features = patchify(resized, max_soft_tokens, patch_size, pooling_kernel_size)
        pixel_values.append(features.pixel_values)
        positions.append(features.position_ids)
        tokens = features.num_soft_tokens
    return np.stack(pixel_values), np.stack(positions), tokens


def frame_features(
    max_soft_tokens: int = 70, patch_size: int = 16, pooling_kernel_size: int = 3
) -> Callable[[np.ndarray], ImageFeatures]:
    """A per-frame transform for `load_video`: resize to the budget and patchify."""

    def transform(frame: np.ndarray) -> ImageFeatures:
        resized = resize_for_budget(frame, max_soft_tokens, patch_size, pooling_kernel_size)
        return patchify(resized, max_soft_tokens, patch_size, pooling_kernel_size)

    return transform


def video_source_path(item: dict[str, Any]) -> Any:
    """The source of a `{"type": "video", ...}` content block (`video`, `url` or `path` key)."""
    for key in ("video", "url", "path"):
        if key in item:
            return item[key]
    raise UnsupportedMediaError("A video block needs a 'video' (path) entry.")
