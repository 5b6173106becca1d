"""How much media one request may carry, checked from the files' headers before any decoding.

A 9000×9000 PNG is 0.3 MB on the wire and 243 MB decoded; a two-hour FLAC of silence is
363 KB and 460 MB of samples. So every image, audio clip and video is measured from its
header first (`image_size`, `audio_duration`, `video_duration`: Pillow's lazy open,
libsndfile's or FFmpeg's stream info, nothing decoded) and counted against a
`MediaBudget` for the whole request: pixels per image, pixels and images in all, seconds
of audio and of video in all. Going over raises the processing layer's typed errors:
`MediaTooLargeError` (images: the server answers 413) or `MediaTooLongError` (audio,
video: 400), each naming the file and the limit.

The server checks a request's media with this before it decodes anything; the GUI checks a
message's attachments (measured when they were attached) and the CLI its files the same way.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlx_model.processing.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
    format_duration,
)


@dataclass(frozen=True)
class MediaBudget:
    """Limits for the media of one request (defaults keep a request well under 1 GB decoded)."""

    max_image_pixels: int = 50_000_000  # one image: 50 MP (a 48 MP phone photo fits)
    max_request_pixels: int = 100_000_000  # all images together: 100 MP, 300 MB as RGB
    max_images: int = 16
    max_audio_s: float = 600.0  # all audio together: 10 minutes
    max_video_s: float = 60.0  # all video together: 1 minute

    def validate(self) -> MediaBudget:
        for name in ("max_image_pixels", "max_request_pixels", "max_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1.")
        for name in ("max_audio_s", "max_video_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0.")
        return self

    def tally(self) -> BudgetTally:
        """A fresh count for one request."""
        return BudgetTally(self)


class BudgetTally:
    """What one request has used of its `MediaBudget` so far; `add_*` raise when it is over."""

    def __init__(self, budget: MediaBudget) -> None:
        self.budget = budget
        self.images = 0
        self.pixels = 0
        self.audio_s = 0.0
        self.video_s = 0.0

    def add_image(
        self, width: int, height: int, name: str = "The image", source: str | None = None
    ) -> None:
        b = self.budget
        pixels = int(width) * int(height)
        if pixels > b.max_image_pixels:
            raise MediaTooLargeError(
                f"{name} is {width}×{height} ({pixels / 1e6:.0f} megapixels); the limit is "
                f"{b.max_image_pixels / 1e6:g} megapixels per image.",
                source=source,
                limit=f"{b.max_image_pixels} pixels",
            )
        if self.images + 1 > b.max_images:
            raise MediaTooLargeError(
                f"{name} is one image too many: a request may carry {b.max_images} images.",
                source=source,
                limit=f"{b.max_images} images",
            )
        if self.pixels + pixels > b.max_request_pixels:
            raise MediaTooLargeError(
                f"{name} ({pixels / 1e6:.0f} megapixels) brings the request's images to "
                f"{(self.pixels + pixels) / 1e6:.0f} megapixels; the limit is "
                f"{b.max_request_pixels / 1e6:g} megapixels per request.",
                source=source,
                limit=f"{b.max_request_pixels} pixels per request",
            )
        self.images += 1
        self.pixels += pixels

    def add_audio(self, seconds: float, name: str = "The audio", source: str | None = None) -> None:
        self.audio_s = self._add_seconds(
            self.audio_s, seconds, self.budget.max_audio_s, "audio", name, source
        )

    def add_video(self, seconds: float, name: str = "The video", source: str | None = None) -> None:
        self.video_s = self._add_seconds(
            self.video_s, seconds, self.budget.max_video_s, "video", name, source
        )

    @staticmethod
    def _add_seconds(
        used: float, seconds: float, limit: float, what: str, name: str, source: str | None
    ) -> float:
        total = used + max(0.0, float(seconds))
        if total > limit + 1e-6:
            raise MediaTooLongError(
                f"{name} is {format_duration(seconds)} long, which brings the request to "
                f"{format_duration(total)} of {what}; the limit is {format_duration(limit)} "
                "per request.",
                source=source,
                limit=f"{limit:g} s",
                duration_s=float(seconds),
                max_duration_s=limit,
            )
        return total


# -- measuring from the header ---------------------------------------------------------------


def _stream(source: bytes | str | os.PathLike[str]) -> Any:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else os.fspath(source)


def image_size(source: bytes | str | os.PathLike[str], name: str = "The image") -> tuple[int, int]:
    """(width, height) from the image's header; nothing is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(_stream(source)) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"{name} is too large to open safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError(f"{name} is not an image we can read.") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptMediaError(f"{name} is damaged and cannot be read: {exc}") from exc
    if width <= 0 or height <= 0:
        raise CorruptMediaError(f"{name} has no pixels.")
    return int(width), int(height)


def audio_duration(source: bytes | str | os.PathLike[str], name: str = "The audio") -> float:
    """Seconds of audio from the stream's header (libsndfile, then FFmpeg); nothing is decoded."""
    import soundfile

    try:
        with soundfile.SoundFile(_stream(source)) as sound:
            if sound.samplerate > 0 and sound.frames >= 0:
                return sound.frames / sound.samplerate
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError):
        pass
    seconds = _container_duration(source, "audio")
    if seconds is None:
        raise CorruptMediaError(f"{name} has no length we can read; it may be damaged.")
    return seconds


def video_duration(source: str | os.PathLike[str], name: str = "The video") -> float:
    """Seconds of video from the container's header (FFmpeg); nothing is decoded."""
    seconds = _container_duration(source, "video")
    if seconds is None:
        raise CorruptMediaError(f"{name} has no length we can read; it may be damaged.")
    return seconds


def _container_duration(source: bytes | str | os.PathLike[str], kind: str) -> float | None:
    import av

    try:
        with av.open(_stream(source)) as container:
            streams = getattr(container.streams, kind)
            if not streams:
                return None
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
    except Exception:  # noqa: BLE001 - any FFmpeg failure: the length is unknown
        return None
    return None


def check_files(
    files: Iterable[tuple[str, str | os.PathLike[str]]],
    budget: MediaBudget,
    *,
    max_clip_s: float | None = None,
) -> None:
    """Check `(kind, path)` pairs ("image", "audio", "video") against `budget` from their headers.

    `max_clip_s`: the model's own limit per audio clip (from the checkpoint), if known.
    Raises a `MediaError` naming the file.
    """
    tally = budget.tally()
    for kind, path in files:
        name = f"“{Path(path).name}”"
        if kind == "image":
            tally.add_image(*image_size(path, f"The image {name}"), f"The image {name}", str(path))
        elif kind == "audio":
            seconds = audio_duration(path, f"The audio file {name}")
            if max_clip_s is not None and seconds > max_clip_s + 1e-6:
                from mlx_model.processing.audio import too_long_error

                raise too_long_error(f"The audio file {name}", seconds, max_clip_s, str(path))
            tally.add_audio(seconds, f"The audio file {name}", str(path))
        elif kind == "video":
            tally.add_video(
                video_duration(path, f"The video {name}"), f"The video {name}", str(path)
            )
        else:
            raise MediaError(f"Unknown media kind {kind!r} for {name}.")


def check_attachments(attachments: Iterable[Any], budget: MediaBudget) -> None:
    """Check stored attachments (`app.attachments.Attachment`: sizes and durations were read
    when they were attached) against `budget`; nothing is opened."""
    tally = budget.tally()
    for a in attachments:
        filename = getattr(a, "filename", "")
        name = f"“{filename}”" if filename else "An attachment"
        kind = getattr(a, "kind", "")
        width, height = getattr(a, "width", None), getattr(a, "height", None)
        seconds = getattr(a, "duration_s", None)
        if kind == "image" and width and height:
            tally.add_image(width, height, f"The image {name}")
        elif kind == "audio" and seconds is not None:
            tally.add_audio(seconds, f"The audio {name}")
        elif kind == "video" and seconds is not None:
            tally.add_video(seconds, f"The video {name}")
