"""Video: decode MP4/MOV/M4V/WebM with PyAV, sample frames of one clip of at most 60 s.

Which frames (`FrameSampling`): as the checkpoint's video processor config says, with
transformers' `default_sample_indices_fn` arithmetic — `num_frames` uniformly (the Gemma 4
default, 32), or `fps` frames per second: n = max(1, int(T / native_fps · fps)); then
index_i = i · T // n. A clip with fewer frames than asked gives every frame (transformers
raises). Each frame's timestamp is index / native_fps, shown to the model as `MM:SS`. Without a
checkpoint (`load_video` alone) the default is 1 frame per second. Frames are resized and
patchified like images with the video budget (70 by default, from the same config). The clip's
audio track can be extracted as an ordinary audio input.

Decoding skips work but never changes pixels: a demux-only pass indexes the packets, and
decoding restarts at the clean key packet before a sampled frame (IDR, VP9 key frame,
intra-only codec) when that skips enough packets; anything else decodes sequentially.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .audio import SAMPLE_RATE, LongAudioPolicy, check_samples, resample, split_clip, to_mono_float
from .errors import (
    CorruptMediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
    check_media_file,
    describe_source,
    format_duration,
)
from .image import ImageFeatures, patchify, resize_for_budget

LongVideoPolicy = Literal["error", "trim"]
MAX_VIDEO_SECONDS = 60.0
DEFAULT_FPS = 1.0  # without a checkpoint's config
DEFAULT_NUM_FRAMES = 32  # transformers' Gemma 4 video processor default
MAX_FILE_BYTES = 4 * 1024 * 1024 * 1024
MAX_FRAME_PIXELS = 8192 * 8192
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}
_FORMATS = "MP4, MOV, M4V or WebM"
# Restart at a clean key packet only when that skips at least this many packets (draining and
# flushing the frame-threaded decoder costs about as much as decoding a few frames).
_MIN_SKIPPED_PACKETS = 8
# H.264/HEVC reorder at most 16 frames: indexing this many packets past the last sampled
# frame finds the decode position of every frame up to it.
_REORDER_SLACK = 64


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


@dataclass(frozen=True)
class FrameSampling:
    """How many frames one clip gives: `num_frames` spread uniformly, or `fps` per second."""

    num_frames: int | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        if (self.num_frames is None) == (self.fps is None):
            raise ValueError("FrameSampling takes exactly one of num_frames and fps.")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be above 0, got {self.fps}")

    @classmethod
    def from_video_processor_config(cls, config: dict[str, Any]) -> FrameSampling:
        """As transformers' video processor samples with this config: `num_frames` (its
        default, 32, when the config does not set it) wins; `fps` applies only when the config
        sets `num_frames` to null."""
        num_frames = config.get("num_frames", DEFAULT_NUM_FRAMES)
        if num_frames is None and config.get("fps") is not None:
            return cls(fps=float(config["fps"]))
        return cls(num_frames=int(num_frames if num_frames is not None else DEFAULT_NUM_FRAMES))

    def indices(self, total_frames: int, native_fps: float) -> np.ndarray:
        """Indices into the clip's `total_frames` frames (transformers' arithmetic)."""
        if self.num_frames is not None:
            n = self.num_frames
        else:
            n = max(1, int(total_frames / native_fps * self.fps))
        n = min(n, total_frames)  # fewer frames than asked: every frame
        return np.arange(n, dtype=np.int64) * total_frames // n


def sample_indices(total_frames: int, native_fps: float, fps: float = DEFAULT_FPS) -> np.ndarray:
    """Frame indices for `fps` frames per second (transformers' `default_sample_indices_fn`)."""
    return FrameSampling(fps=fps).indices(total_frames, native_fps)


def format_timestamp(seconds: float) -> str:
    """`MM:SS` as the reference prompt shows it."""
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _open(path: Path, name: str):
    import av

    check_media_file(path, f"The video {name}", MAX_FILE_BYTES)
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


def _workers() -> int:
    return min(8, os.cpu_count() or 2)


def _convert(frame, transform: Callable[[np.ndarray], Any] | None) -> Any:
    """RGB array of a decoded frame (swscale releases the GIL), through `transform` if given."""
    rgb = frame.to_ndarray(format="rgb24")
    return transform(rgb) if transform is not None else rgb


# -- packet index: where decoding may start afresh -------------------------------------------


def _nal_units(data: bytes, length_size: int | None):
    """NAL unit first bytes of an access unit: length-prefixed (MP4/MKV) or Annex B start codes."""
    if length_size:
        offset = 0
        while offset + length_size < len(data):
            size = int.from_bytes(data[offset : offset + length_size], "big")
            yield data[offset + length_size]
            offset += length_size + size
        return
    offset = data.find(b"\x00\x00\x01")
    while 0 <= offset < len(data) - 3:
        yield data[offset + 3]
        offset = data.find(b"\x00\x00\x01", offset + 3)


def _h264_idr(length_size: int | None) -> Callable[[bytes], bool]:
    def is_idr(data: bytes) -> bool:
        for header in _nal_units(data, length_size):
            kind = header & 0x1F
            if 1 <= kind <= 5:  # first slice decides
                return kind == 5
        return False

    return is_idr


def _hevc_idr(length_size: int | None) -> Callable[[bytes], bool]:
    def is_idr(data: bytes) -> bool:
        for header in _nal_units(data, length_size):
            kind = (header >> 1) & 0x3F
            if kind < 32:  # first slice decides: IDR_W_RADL or IDR_N_LP
                return kind in (19, 20)
        return False

    return is_idr


def _vp9_key(data: bytes) -> bool:
    """A VP9 key frame (uncompressed header: frame marker, profile, show_existing, frame_type)."""
    if not data:
        return False
    bits = data[0]
    if bits >> 6 != 0b10:
        return False
    profile = ((bits >> 5) & 1) | (((bits >> 4) & 1) << 1)
    pos = 4 if profile < 3 else 5  # bits used so far (profile 3 has a reserved zero bit)
    show_existing = (bits >> (7 - pos)) & 1
    frame_type = (bits >> (6 - pos)) & 1
    return not show_existing and frame_type == 0


def _clean_start_test(codec_context) -> Callable[[bytes], bool] | None:
    """For a key packet: does decoding from it alone give the same pictures as decoding from the start?

    Only where the bitstream guarantees it: H.264/HEVC IDR pictures (not open-GOP I/CRA
    pictures), VP9 key frames, intra-only codecs. None: never skip ahead (sequential decode).
    Only codecs with one packet per shown frame are listed (VP8's hidden alt-ref packets are not).
    """
    name = codec_context.name
    extradata = bytes(codec_context.extradata or b"")
    if getattr(codec_context.codec, "intra_only", False):
        return lambda data: True
    if name == "h264":
        avcc = len(extradata) > 4 and extradata[0] == 1
        return _h264_idr((extradata[4] & 3) + 1 if avcc else None)
    if name == "hevc":
        hvcc = len(extradata) > 22 and extradata[0] == 1
        return _hevc_idr((extradata[21] & 3) + 1 if hvcc else None)
    if name == "vp9":
        return _vp9_key
    return None


@dataclass(frozen=True)
class PacketIndex:
    """The first video packets in decode order: presentation timestamps and clean restart points."""

    pts: list[int | None]
    clean: list[bool]  # decoding may start afresh at this packet (see `_clean_start_test`)
    usable: bool  # timestamps unique and present, nothing to discard: frames can be matched


def index_packets(container, stream, limit: int | None = None) -> PacketIndex:
    """Demux (without decoding) the first `limit` video packets (all when None), then rewind.

    Not `usable` where matching frames to packets would be unsafe: packets without or with
    duplicate timestamps, or packets the demuxer marks to discard (edit lists).
    """
    is_clean = _clean_start_test(stream.codec_context)
    pts: list[int | None] = []
    clean: list[bool] = []
    usable = True
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if packet.pts is None or packet.is_discard:
            usable = False
        pts.append(packet.pts)
        clean.append(
            is_clean is not None and usable and packet.is_keyframe and is_clean(bytes(packet))
        )
        if limit is not None and len(pts) >= limit:
            break
    container.seek(0)
    usable = usable and len(set(pts)) == len(pts)
    return PacketIndex(pts, clean, usable)


def plan_segments(
    index: PacketIndex, wanted: np.ndarray, min_skip: int
) -> list[tuple[int, int]] | None:
    """Decode-order packet ranges [first, last] that yield the `wanted` frames (display order).

    For each wanted frame, decoding restarts at the clean start before it when that skips at
    least `min_skip` packets that sequential decoding would have decoded; otherwise decoding
    continues. None when a wanted frame lies beyond the packets.
    """
    n = len(index.pts)
    if not index.usable or n == 0 or int(wanted[-1]) >= n:
        return None
    order = sorted(range(n), key=index.pts.__getitem__)  # display rank -> decode position
    starts = [d for d in range(n) if index.clean[d]]
    segments: list[list[int]] = []
    for d in sorted(order[int(r)] for r in wanted):
        restart = 0
        for s in reversed(starts[: bisect.bisect_right(starts, d)]):
            if index.pts[s] <= index.pts[d]:  # not a leading picture of that start
                restart = s
                break
        if segments and restart - segments[-1][1] - 1 < min_skip:
            segments[-1][1] = max(segments[-1][1], d)
        else:
            segments.append([restart, d])
    return [(a, b) for a, b in segments]


class _Mismatch(Exception):
    """The stream did not decode as its index promised (fall back to sequential decoding)."""


def _decode_segments(
    container,
    stream,
    index: PacketIndex,
    segments: list[tuple[int, int]],
    wanted: np.ndarray,
    transform: Callable[[np.ndarray], Any] | None,
) -> tuple[list[Any], int]:
    """Decode only `segments` (flushing the decoder between them); returns (frames, packets decoded).

    Raises `_Mismatch` unless every fed packet gave exactly one frame and every wanted frame
    came out, so a stream that breaks the index's promises is decoded sequentially instead.
    """
    codec = stream.codec_context
    order = sorted(range(len(index.pts)), key=index.pts.__getitem__)
    slot = {index.pts[order[int(r)]]: k for k, r in enumerate(wanted)}
    first = {a: b for a, b in segments}
    out: list[Any] = [None] * len(wanted)
    fed = produced = 0
    with ThreadPoolExecutor(max_workers=_workers()) as pool:

        def take(frames) -> None:
            nonlocal produced
            for frame in frames:
                produced += 1
                k = slot.get(frame.pts)
                if k is not None and out[k] is None:
                    out[k] = pool.submit(_convert, frame, transform)

        stop = -1
        d = -1
        for packet in container.demux(stream):
            if not packet.size:
                continue
            d += 1
            if d >= len(index.pts) or packet.pts != index.pts[d]:
                raise _Mismatch(d)
            if d in first:
                if d > stop + 1 and fed:
                    take(codec.decode(None))  # drain, then start afresh at the clean start
                    codec.flush_buffers()
                stop = max(stop, first[d])
            if d > stop:
                if d > segments[-1][1]:
                    break
                continue
            fed += 1
            take(codec.decode(packet))
        take(codec.decode(None))
        results = [f.result() if f is not None else None for f in out]
    if produced != fed or any(f is None for f in results):
        raise _Mismatch(fed, produced)
    return results, fed


def _decode_skipping(
    container,
    stream,
    index: PacketIndex,
    wanted: np.ndarray,
    transform: Callable[[np.ndarray], Any] | None,
) -> list[Any] | None:
    """The wanted frames decoded from clean starts only where that skips work; None: decode all."""
    segments = plan_segments(index, wanted, _MIN_SKIPPED_PACKETS)
    if segments is None or segments == [(0, segments[-1][1])]:
        return None  # nothing to skip: plain sequential decoding does the same work
    try:
        return _decode_segments(container, stream, index, segments, wanted, transform)[0]
    except _Mismatch:
        stream.codec_context.flush_buffers()
        container.seek(0)
        return None


def _decode_at(
    container, stream, wanted: np.ndarray, transform: Callable[[np.ndarray], Any] | None
) -> tuple[list[Any], int]:
    """Decode sequentially, keeping frames at `wanted` indices; returns (frames, frames seen).

    Kept frames are converted and go through `transform` (e.g. the budget resize) on worker
    threads while decoding continues, so full-resolution frames never pile up in memory.
    """
    targets = {int(i): k for k, i in enumerate(wanted)}
    out: list[Any] = [None] * len(wanted)
    last = int(wanted[-1])
    seen = 0
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for i, frame in enumerate(container.decode(stream)):
            seen = i + 1
            k = targets.get(i)
            if k is not None:
                out[k] = pool.submit(_convert, frame, transform)
            if i >= last:
                break
        results = [f.result() if f is not None else None for f in out]
    return [f for f in results if f is not None], seen


def load_video(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    sampling: FrameSampling | None = None,
    max_seconds: float = MAX_VIDEO_SECONDS,
    policy: LongVideoPolicy = "error",
    transform: Callable[[np.ndarray], Any] | None = None,
) -> VideoClip:
    """Decode the frames of `path` chosen by `sampling` (or `fps` frames per second; default
    1); longer than `max_seconds` raises unless `policy="trim"`.

    `transform`, when given, maps each kept RGB frame (e.g. to its budget size) as it is
    decoded; `frames` then holds the transformed frames.
    """
    if sampling is None:
        sampling = FrameSampling(fps=DEFAULT_FPS if fps is None else fps)
    elif fps is not None:
        raise ValueError("Give load_video either fps or sampling, not both.")
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
        index = None
        try:
            total = int(stream.frames)
            if total <= 0:  # no count in the header (WebM): count the packets
                index = index_packets(container, stream)
                total = len(index.pts)
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
        wanted = sampling.indices(total, native_fps)
        stream.codec_context.thread_type = "AUTO"
        try:
            if index is None:  # decode order may differ from display order by a few frames
                index = index_packets(container, stream, limit=total + _REORDER_SLACK)
            frames = _decode_skipping(container, stream, index, wanted, transform)
            if frames is None:
                frames, seen = _decode_at(container, stream, wanted, transform)
                if len(frames) < len(wanted) and seen > 0:
                    # The header over-counted frames: resample over the frames that really exist.
                    total = seen
                    wanted = sampling.indices(total, native_fps)
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
