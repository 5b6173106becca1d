"""Long videos: consecutive segments of at most 60 s, each sampled as one clip.

Each segment's frames are chosen by the checkpoint's video rule for one clip of that length
(`ProcessorConfig.video_sampling`, a `FrameSampling`: for Gemma 4's config 32 frames spread
evenly over the clip; offset to the segment's first frame), so a segment goes in exactly as
a short video of its own would, and every frame keeps the video's own timestamp.
`choose_fidelity` (pure) says how many frames per segment and which per-frame image budget
fit the tokens the plan leaves, or None: describe the video segment by segment instead.
`iter_segments` decodes the video once, front to back, handing over one segment at a time
with its frames already at the budget's size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlx_model.processing.errors import CorruptMediaError
from mlx_model.processing.image import aspect_ratio_preserving_size, resize_for_budget
from mlx_model.processing.video import (
    DEFAULT_NUM_FRAMES,
    FrameSampling,
    VideoClip,
    _open,
    _video_stream,
    index_packets,
)

from .clips import AudioClip, format_clock

SEGMENT_SECONDS = 60.0
FRAME_MARKER_TOKENS = 2  # <|image> ... <image|> around each frame's soft tokens
# Transformers' Gemma 4 default (32 frames per clip) where no checkpoint says otherwise.
DEFAULT_SAMPLING = FrameSampling(num_frames=DEFAULT_NUM_FRAMES)
# Fractions of the checkpoint's frames tried, in order, when the video does not fit at its
# own sampling: half, a third, a quarter, a fifth, a tenth of the frames.
FRAME_FRACTIONS = (0.5, 1 / 3, 0.25, 0.2, 0.1)


@dataclass(frozen=True)
class VideoInfo:
    """What the header (or a demux pass) says about a video."""

    total_frames: int
    native_fps: float
    width: int
    height: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.native_fps


@dataclass(frozen=True)
class VideoSegment:
    """One segment: its span and the (absolute) frame indices sampled in it."""

    index: int
    start_s: float
    end_s: float
    frame_indices: np.ndarray
    native_fps: float

    @property
    def timestamps(self) -> list[float]:
        return [int(i) / self.native_fps for i in self.frame_indices]

    @property
    def label(self) -> str:
        return f"{format_clock(self.start_s)}–{format_clock(self.end_s)}"


def probe_video(path: str | os.PathLike[str], name: str | None = None) -> VideoInfo:
    """Frame count, rate, size and whether there is sound, without decoding a frame."""
    path = Path(path)
    what = f"“{name or path.name}”"
    container = _open(path, what)
    try:
        stream = _video_stream(container, what, str(path))
        native_fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
        total = int(stream.frames or 0)
        if total <= 0:
            total = len(index_packets(container, stream).pts)
        if total <= 0:
            raise CorruptMediaError(f"The video {what} contains no frames.", source=str(path))
        return VideoInfo(
            total, native_fps, int(stream.width), int(stream.height), bool(container.streams.audio)
        )
    finally:
        container.close()


def plan_segments(
    total_frames: int,
    native_fps: float,
    *,
    segment_seconds: float = SEGMENT_SECONDS,
    sampling: FrameSampling = DEFAULT_SAMPLING,
) -> list[VideoSegment]:
    """Consecutive segments of at most `segment_seconds`, each sampled as one clip by `sampling`
    (the checkpoint's `ProcessorConfig.video_sampling`)."""
    per_segment = max(1, int(math.floor(segment_seconds * native_fps + 1e-9)))
    segments = []
    for k, first in enumerate(range(0, total_frames, per_segment)):
        count = min(per_segment, total_frames - first)
        indices = first + sampling.indices(count, native_fps)
        segments.append(
            VideoSegment(k, first / native_fps, (first + count) / native_fps, indices, native_fps)
        )
    return segments


def frame_tokens(
    height: int, width: int, budget: int, patch_size: int = 16, pooling_kernel_size: int = 3
) -> int:
    """Soft tokens of one frame of this size at `budget` (as the processor resizes it)."""
    h, w = aspect_ratio_preserving_size(
        height, width, patch_size, budget * pooling_kernel_size**2, pooling_kernel_size
    )
    side = patch_size * pooling_kernel_size
    return (h // side) * (w // side)


def video_tokens(
    segments: Sequence[VideoSegment], tokens_per_frame: int, *, label_tokens: int = 4
) -> int:
    """Prompt tokens of the segments' frames: soft tokens, markers and each `MM:SS` stamp,
    plus a label line per segment (`label_tokens` each, from the tokenizer)."""
    frames = sum(len(s.frame_indices) for s in segments)
    return frames * (tokens_per_frame + FRAME_MARKER_TOKENS + 3) + len(segments) * label_tokens


def fewer_frames(sampling: FrameSampling, fraction: float) -> FrameSampling:
    """`sampling` with about `fraction` of its frames (at least one per segment)."""
    if sampling.num_frames is not None:
        return FrameSampling(num_frames=max(1, int(sampling.num_frames * fraction)))
    return FrameSampling(fps=float(sampling.fps) * fraction)


def describe_sampling(sampling: FrameSampling) -> str:
    """`32 frames per segment`, `1 frame every 2 s`, `1 frame per second`."""
    if sampling.num_frames is not None:
        n = sampling.num_frames
        return f"{n} frame{'' if n == 1 else 's'} per segment"
    fps = float(sampling.fps)
    if fps >= 1:
        return f"{fps:g} frame{'' if fps == 1 else 's'} per second"
    return f"1 frame every {1 / fps:.3g} s"


@dataclass(frozen=True)
class Fidelity:
    """How a long video goes into one prompt."""

    sampling: FrameSampling
    budget: int
    tokens: int  # frames (and the sound, when counted) at this fidelity
    reduced: bool  # fewer frames or a smaller budget than the checkpoint's own

    def message(self, default_sampling: FrameSampling, default_budget: int) -> str:
        """What to tell the user, e.g. `The video was sampled with 16 frames per segment
        instead of 32 frames per segment to fit the context.` ("" when nothing was reduced)."""
        if not self.reduced:
            return ""
        parts = []
        if self.sampling != default_sampling:
            parts.append(
                f"{describe_sampling(self.sampling)} instead of {describe_sampling(default_sampling)}"
            )
        if self.budget < default_budget:
            parts.append(f"image budget {self.budget} instead of {default_budget}")
        return "The video was sampled with " + " and ".join(parts) + " to fit the context."


def choose_fidelity(
    *,
    total_frames: int,
    native_fps: float,
    available_tokens: int,
    tokens_per_frame: Callable[[int], int],
    default_budget: int,
    budgets: Sequence[int],
    sampling: FrameSampling = DEFAULT_SAMPLING,
    audio_tokens: int = 0,
    segment_seconds: float = SEGMENT_SECONDS,
    label_tokens: int = 4,
) -> Fidelity | None:
    """The richest sampling that fits `available_tokens`, or None (describe it segment by segment).

    Tried in order: the checkpoint's sampling (`sampling`) and budget; smaller budgets (of
    `budgets`) with that sampling; then fewer frames per segment (`FRAME_FRACTIONS` of the
    checkpoint's) at the smallest budget. `audio_tokens` (the sound track's clips) always go
    in beside the frames.
    """
    smaller = sorted((b for b in budgets if b < default_budget), reverse=True)
    options = [(sampling, default_budget)] + [(sampling, b) for b in smaller]
    lowest = smaller[-1] if smaller else default_budget
    seen = {sampling}
    for fraction in FRAME_FRACTIONS:
        fewer = fewer_frames(sampling, fraction)
        if fewer not in seen:
            seen.add(fewer)
            options.append((fewer, lowest))
    for choice, budget in options:
        segments = plan_segments(
            total_frames, native_fps, segment_seconds=segment_seconds, sampling=choice
        )
        tokens = (
            video_tokens(segments, tokens_per_frame(budget), label_tokens=label_tokens)
            + audio_tokens
        )
        if tokens <= available_tokens:
            reduced = (choice, budget) != (sampling, default_budget)
            return Fidelity(choice, budget, tokens, reduced)
    return None


@dataclass(frozen=True)
class DecodedSegment:
    """A segment's frames, resized for `budget`, as a clip the processor takes."""

    segment: VideoSegment
    clip: VideoClip  # frames: RGB uint8 at the budget's size
    budget: int


def iter_segments(
    path: str | os.PathLike[str],
    segments: Sequence[VideoSegment],
    *,
    budget: int,
    patch_size: int = 16,
    pooling_kernel_size: int = 3,
    name: str | None = None,
) -> Iterator[DecodedSegment]:
    """Decode the video once, front to back; yield each segment when its last frame is in.

    Kept frames are resized to the budget's grid at once, so memory holds one segment of
    small frames, never the video.
    """
    import av

    path = Path(path)
    what = f"“{name or path.name}”"
    wanted = {int(i): (k, j) for k, s in enumerate(segments) for j, i in enumerate(s.frame_indices)}
    if not wanted:
        return
    last = max(wanted)
    frames: dict[int, list[Any]] = {
        k: [None] * len(s.frame_indices) for k, s in enumerate(segments)
    }
    done = 0
    container = _open(path, what)
    try:
        stream = _video_stream(container, what, str(path))
        stream.codec_context.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                slot = wanted.get(i)
                if slot is not None:
                    k, j = slot
                    rgb = frame.to_ndarray(format="rgb24")
                    frames[k][j] = resize_for_budget(rgb, budget, patch_size, pooling_kernel_size)
                    while done < len(segments) and all(f is not None for f in frames[done]):
                        yield _decoded(segments[done], frames.pop(done), budget)
                        done += 1
                if i >= last:
                    break
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"The video {what} is damaged and cannot be read.", source=str(path)
            ) from exc
    finally:
        container.close()
    # The header over-counted frames: hand over what the stream really had.
    while done < len(segments):
        kept = [f for f in frames.pop(done) if f is not None]
        if kept:
            seg = segments[done]
            n = len(kept)
            yield _decoded(
                VideoSegment(
                    seg.index, seg.start_s, seg.end_s, seg.frame_indices[:n], seg.native_fps
                ),
                kept,
                budget,
            )
        done += 1


def _decoded(segment: VideoSegment, frames: list[Any], budget: int) -> DecodedSegment:
    clip = VideoClip(
        frames=frames,
        frame_indices=segment.frame_indices,
        native_fps=segment.native_fps,
        total_frames=int(segment.frame_indices[-1]) + 1,
        duration_s=segment.end_s - segment.start_s,
    )
    return DecodedSegment(segment, clip, budget)


def long_video_content(
    segments: Sequence[DecodedSegment],
    audio: Sequence[AudioClip] = (),
    *,
    name: str | None = None,
) -> list[dict[str, Any]]:
    """Content blocks: per segment a label line, its video block (frames with their `MM:SS`
    stamps), then the sound clips that start within it, each after its start time."""
    blocks: list[dict[str, Any]] = []
    if name:
        blocks.append({"type": "text", "text": f"Video “{name}”, in segments of up to a minute:"})
    pending = sorted(audio, key=lambda c: c.start_s)
    for decoded in segments:
        seg = decoded.segment
        blocks.append({"type": "text", "text": f"Segment {seg.index + 1} ({seg.label}):"})
        blocks.append({"type": "video", "video": decoded.clip, "max_soft_tokens": decoded.budget})
        while pending and (pending[0].start_s < seg.end_s or decoded is segments[-1]):
            clip = pending.pop(0)
            blocks.append({"type": "text", "text": f"Sound from {format_clock(clip.start_s)}:"})
            blocks.append(clip.block())
    return blocks


def describe_request(segment: DecodedSegment, name: str) -> list[dict[str, Any]]:
    """The one-turn conversation that asks for a description of one segment (the fallback)."""
    seg = segment.segment
    return [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": segment.clip, "max_soft_tokens": segment.budget},
                {
                    "type": "text",
                    "text": (
                        f"This is {seg.label} of the video “{name}”. Describe what happens, with "
                        "the timestamps shown on the frames; include any text on screen."
                    ),
                },
            ],
        }
    ]


__all__ = [
    "DecodedSegment",
    "Fidelity",
    "VideoInfo",
    "VideoSegment",
    "choose_fidelity",
    "describe_request",
    "describe_sampling",
    "fewer_frames",
    "frame_tokens",
    "iter_segments",
    "long_video_content",
    "plan_segments",
    "probe_video",
    "video_tokens",
]
