"""Typed errors for media the processor cannot use, with messages written for people.

Every error names the file (or "the recording" / "the image" for in-memory input) and,
where one applies, the limit that was exceeded, so the UI can show `str(error)` as is.
"""

from __future__ import annotations

from pathlib import Path


class ProcessingError(Exception):
    """Base of every error raised by `mlx_model.processing`."""


class MediaError(ProcessingError):
    """A media attachment could not be used. `str(error)` is a sentence fit for the UI."""

    kind = "media"

    def __init__(self, message: str, *, source: str | None = None, limit: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.limit = limit

    def __str__(self) -> str:
        return self.message


class UnsupportedMediaError(MediaError):
    """The file is not a format (or codec) we can decode."""

    kind = "unsupported"


class CorruptMediaError(MediaError):
    """The file claims a supported format but cannot be decoded (empty, truncated, bad samples)."""

    kind = "corrupt"


class MediaTooLargeError(MediaError):
    """The file exceeds a size limit (pixels, bytes), e.g. a decompression bomb."""

    kind = "too_large"


class MediaTooLongError(MediaError):
    """Audio or video is longer than the model accepts and the caller chose no trim/split policy."""

    kind = "too_long"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        limit: str | None = None,
        duration_s: float | None = None,
        max_duration_s: float | None = None,
    ):
        super().__init__(message, source=source, limit=limit)
        self.duration_s = duration_s
        self.max_duration_s = max_duration_s


class ChatFormatError(ProcessingError, ValueError):
    """The messages do not fit the chat format (unknown role, content type, placeholder mismatch)."""


def describe_source(source: object, default: str) -> str:
    """A short human name for a media source: the file name for paths, else `default`."""
    import os

    if isinstance(source, (str, os.PathLike)):
        return f"“{os.path.basename(os.fspath(source)) or os.fspath(source)}”"
    return default


def format_duration(seconds: float) -> str:
    """Seconds as a short human duration: `45 s`, `2 min 5 s`, `2 h 0 min`."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return (
            f"{seconds:.1f} s"
            if seconds < 10 and seconds != int(seconds)
            else f"{int(round(seconds))} s"
        )
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def check_media_file(path: Path, what: str, max_bytes: int) -> None:
    """Raise the typed error for a file that is missing, empty or over `max_bytes`.

    `what` names it for the message, e.g. "The image 'cat.png'".
    """
    if not path.exists():
        raise MediaError(f"{what} could not be found.", source=str(path))
    size = path.stat().st_size
    if size == 0:
        raise CorruptMediaError(f"{what} is empty (0 bytes).", source=str(path))
    if size > max_bytes:
        if max_bytes >= 2**30:
            sizes = f"{size / 2**30:.1f} GB; the limit is {max_bytes / 2**30:.0f} GB"
        else:
            sizes = f"{size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB"
        raise MediaTooLargeError(
            f"{what} is {sizes}.", source=str(path), limit=f"{max_bytes} bytes"
        )
