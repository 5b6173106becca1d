"""Attachments: take a file, pasted bytes or a capture, check it, and copy it into the media store.

`AttachmentIngestor` does, for every input:

1. sniff the type from the content (magic bytes, then PyAV for containers that may hold
   audio or video), never from the file name;
2. validate it against the model's limits by decoding it with the processing layer
   (`mlx_model.processing.image/audio/video`), so what is accepted here is exactly what
   the model can take; problems raise that layer's typed `MediaError`s, whose message
   names the file and the limit;
3. copy it into the content-addressed `MediaStore` and add previews: an image thumbnail;
   for audio the duration and a waveform preview array (peak per bin, 0..1); for video
   the duration, a thumbnail and a frame strip (a row of frames in one JPEG).

Files that are not media are read as documents (PDF, DOCX, text, Markdown, code, CSV/TSV,
HTML) and folders as one codebase (`app.inputs.ingest`): their chip shows pages and
tokens. Audio and video of any length are accepted: longer than one clip, the duration is
read from the header and the previews are made without decoding the whole file; what goes
into the prompt is decided when the message is sent (`app.inputs`).

Limits come from the checkpoint (`MediaLimits.from_checkpoint`): nothing about the 12B is
hard-coded here.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.storage.media import MediaRecord, MediaStore
from mlx_model.processing.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    UnsupportedMediaError,
    describe_source,
)

THUMBNAIL_SIZE = 256  # longest side, pixels
STRIP_FRAMES = 8
STRIP_HEIGHT = 96
WAVEFORM_BINS = 100
SNIFF_BYTES = 64

SUPPORTED_DESCRIPTION = (
    "images (JPEG, PNG, HEIC, WebP, GIF, TIFF, BMP), audio (WAV, FLAC, OGG, MP3, M4A, AIFF), "
    "video (MP4, MOV, M4V, WebM, MKV), documents (PDF, Word .docx, text, Markdown, source "
    "code, CSV/TSV, HTML) or a folder of source files"
)


@dataclass(frozen=True)
class MediaLimits:
    """What the loaded model accepts per attachment."""

    max_audio_s: float
    max_video_s: float
    max_image_pixels: int
    max_image_bytes: int
    video_fps: float = 1.0

    @classmethod
    def defaults(cls) -> MediaLimits:
        """The processing layer's own limits (used when no checkpoint is known); an image may
        not be larger than a request's media budget allows for one image."""
        from app.media_budget import MediaBudget
        from mlx_model.processing import audio, image, video

        return cls(
            max_audio_s=audio.MAX_CLIP_SECONDS,
            max_video_s=video.MAX_VIDEO_SECONDS,
            max_image_pixels=min(image.DEFAULT_MAX_PIXELS, MediaBudget().max_image_pixels),
            max_image_bytes=image.DEFAULT_MAX_BYTES,
            video_fps=video.DEFAULT_FPS,
        )

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str]) -> MediaLimits:
        """Limits for a checkpoint folder: its processor config's audio length (tokens × ms per token)."""
        limits = cls.defaults()
        config_file = Path(path) / "processor_config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return limits
        tokens, ms = config.get("audio_seq_length"), config.get("audio_ms_per_token")
        if isinstance(tokens, int) and isinstance(ms, (int, float)) and tokens > 0 and ms > 0:
            limits = _replace(limits, max_audio_s=tokens * ms / 1000.0)
        return limits


def _replace(limits: MediaLimits, **changes: Any) -> MediaLimits:
    import dataclasses

    return dataclasses.replace(limits, **changes)


@dataclass(frozen=True)
class Attachment:
    """A validated media file in the store, ready to go into a message."""

    sha256: str
    kind: str  # "image" | "audio" | "video" | "document"
    mime: str
    filename: str  # the name the user knows it by (for display and export)
    size: int
    path: Path  # the stored copy
    thumbnail: Path | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return self.meta.get("duration_s")

    @property
    def width(self) -> int | None:
        return self.meta.get("width")

    @property
    def height(self) -> int | None:
        return self.meta.get("height")

    @property
    def waveform(self) -> list[float]:
        """Audio: peak level per bin (0..1), `WAVEFORM_BINS` values, for a preview."""
        return list(self.meta.get("waveform", []))

    @property
    def frame_strip(self) -> Path | None:
        """Video: one JPEG with a row of frames across the clip."""
        name = self.meta.get("frame_strip")
        return self.path.parent / name if name else None

    @property
    def tokens(self) -> int | None:
        """Document: the tokens it takes in a prompt (estimated without a local model)."""
        return self.meta.get("tokens")

    @property
    def size_label(self) -> str:
        """Document: `300 pages`, `1,204 lines`, `42 files`."""
        return str(self.meta.get("size_label", ""))

    @classmethod
    def from_record(cls, record: MediaRecord, filename: str = "") -> Attachment:
        return cls(
            sha256=record.sha256,
            kind=record.kind,
            mime=record.mime,
            filename=filename or record.meta.get("filename", "") or record.path.name,
            size=record.size,
            path=record.path,
            thumbnail=record.thumbnail,
            meta=dict(record.meta),
        )


# -- sniffing ---------------------------------------------------------------------------

_FTYP_IMAGE = {
    b"heic",
    b"heix",
    b"heim",
    b"heis",
    b"hevc",
    b"hevx",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
}
_FTYP_AUDIO = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def sniff(head: bytes) -> tuple[str, str, str] | None:
    """(kind, MIME type, extension) from a file's first bytes, or None if unknown.

    `kind` is "image", "audio", "video" or "container" (MP4-family, Matroska or Ogg:
    audio or video depending on its streams, see `sniff_file`).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg", ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png", ".png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "image/gif", ".gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "image/webp", ".webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image", "image/tiff", ".tiff"
    if head[:2] == b"BM" and len(head) >= 14:
        return "image", "image/bmp", ".bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "audio/wav", ".wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video", "video/x-msvideo", ".avi"
    if head.startswith(b"fLaC"):
        return "audio", "audio/flac", ".flac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio", "audio/aiff", ".aiff"
    if head.startswith(b"caff"):
        return "audio", "audio/x-caf", ".caf"
    if head.startswith(b"ID3") or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06
    ):
        return "audio", "audio/mpeg", ".mp3"
    if head.startswith(b"OggS"):
        return "container", "audio/ogg", ".ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "container", "video/webm" if b"webm" in head else "video/x-matroska", ".mkv"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _FTYP_IMAGE:
            return "image", "image/heif" if brand != b"avif" else "image/avif", ".heic"
        if brand in _FTYP_AUDIO:
            return "audio", "audio/mp4", ".m4a"
        mime = "video/quicktime" if brand == b"qt  " else "video/mp4"
        return "container", mime, ".mov" if brand == b"qt  " else ".mp4"
    return None


def _probe_streams(path: Path) -> tuple[bool, bool]:
    """(has video, has audio) streams, per PyAV; (False, False) if it cannot be opened."""
    import av

    try:
        with av.open(str(path)) as container:
            video = any(s.frames != 1 for s in container.streams.video)  # cover art is 1 frame
            return video, bool(container.streams.audio)
    except Exception:  # noqa: BLE001 - any FFmpeg failure means "not decodable"
        return False, False


def sniff_file(path: Path, name: str) -> tuple[str, str, str]:
    """(kind, MIME, extension) of a file from its content; raises `UnsupportedMediaError`."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    found = sniff(head)
    if found is None:
        raise UnsupportedMediaError(
            f"{name} is not a file type we can use; attach {SUPPORTED_DESCRIPTION}.",
            source=str(path),
        )
    kind, mime, ext = found
    if kind != "container":
        return found
    has_video, has_audio = _probe_streams(path)
    if has_video:
        return "video", mime.replace("audio/", "video/"), ext
    if has_audio:
        audio_mime = {"video/mp4": "audio/mp4", "video/quicktime": "audio/mp4"}.get(
            mime, mime.replace("video/", "audio/")
        )
        return "audio", audio_mime, ".m4a" if ext in (".mp4", ".mov") else ext
    raise CorruptMediaError(
        f"{name} looks like a media container but has no audio or video we can decode.",
        source=str(path),
    )


# -- previews ---------------------------------------------------------------------------


def _jpeg(image: Any, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_thumbnail(rgb: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG no larger than `size` on its longest side."""
    from PIL import Image

    image = Image.fromarray(rgb)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return _jpeg(image)


def frame_strip(
    frames: Sequence[np.ndarray], count: int = STRIP_FRAMES, height: int = STRIP_HEIGHT
) -> bytes:
    """Up to `count` frames spread over the clip, scaled to `height`, side by side in one JPEG."""
    from PIL import Image

    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    tiles = []
    for i in picks:
        tile = Image.fromarray(frames[int(i)])
        width = max(1, round(tile.width * height / tile.height))
        tiles.append(tile.resize((width, height), Image.Resampling.BILINEAR))
    strip = Image.new("RGB", (sum(t.width for t in tiles), height))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width
    return _jpeg(strip, quality=80)


def waveform_preview(samples: np.ndarray, bins: int = WAVEFORM_BINS) -> list[float]:
    """Peak absolute level per bin (0..1) of mono samples; `bins` values (fewer for very short clips)."""
    samples = np.abs(np.asarray(samples, dtype=np.float32).reshape(-1))
    if samples.size == 0:
        return []
    bins = min(bins, samples.size)
    edges = np.linspace(0, samples.size, bins + 1).astype(int)
    peaks = np.maximum.reduceat(samples, edges[:-1])
    return [round(float(min(1.0, p)), 4) for p in peaks]


# -- ingest -----------------------------------------------------------------------------


class AttachmentIngestor:
    """Validate media and copy it into the store; see module docstring."""

    def __init__(self, media: MediaStore, limits: MediaLimits | None = None) -> None:
        self.media = media
        self.limits = limits or MediaLimits.defaults()
        # Set when a local model is loaded: documents are counted with its tokenizer and
        # scanned pages rendered for its image processor (else estimated / the defaults).
        self.count_tokens: Any = None
        self.processor_config: Any = None

    def from_path(self, path: str | os.PathLike[str], *, filename: str | None = None) -> Attachment:
        """Ingest a file the user dropped or chose. Raises a `MediaError` with a clear message."""
        path = Path(path)
        name = describe_source(filename or path, "The file")
        if not path.exists():
            raise MediaError(f"{name} could not be found.", source=str(path))
        if path.is_dir():
            return self._document(path, filename or path.name or str(path))
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise MediaError(f"{name} cannot be read: {exc.strerror}.", source=str(path)) from exc
        if size == 0:
            raise CorruptMediaError(f"{name} is empty (0 bytes).", source=str(path))
        display = filename or path.name
        try:
            kind, mime, ext = sniff_file(path, name)
        except PermissionError as exc:
            raise MediaError(
                f"{name} cannot be read: permission denied.", source=str(path)
            ) from exc
        except UnsupportedMediaError as exc:  # not media: a document, or nothing we read
            return self._document(path, display, exc)
        if kind == "image":
            return self._image(path, display, mime, ext)
        if kind == "audio":
            return self._audio(path, display, mime, ext)
        return self._video(path, display, mime, ext)

    def from_bytes(self, data: bytes, *, filename: str = "") -> Attachment:
        """Ingest pasted bytes (e.g. an image from the clipboard)."""
        if not data:
            raise CorruptMediaError("The pasted data is empty.")
        with tempfile.TemporaryDirectory(prefix="gemma-desk-paste-") as tmp:
            path = Path(tmp) / "pasted"
            path.write_bytes(data)
            return self.from_path(path, filename=filename or "Pasted")

    def from_audio_array(
        self, waveform: np.ndarray, sample_rate: int, *, filename: str = "Recording.wav"
    ) -> Attachment:
        """Ingest PCM samples (mono or [n, channels] float in -1..1) as a 16-bit WAV."""
        import soundfile

        samples = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)
        if samples.size == 0:
            raise CorruptMediaError("The recording is empty.")
        buf = io.BytesIO()
        soundfile.write(buf, samples, int(sample_rate), format="WAV", subtype="PCM_16")
        return self.from_bytes(buf.getvalue(), filename=filename)

    def from_capture(self, capture: Any) -> list[Attachment]:
        """Ingest what `app.capture` produced: a microphone `Recording` (one audio attachment)
        or a webcam `Clip` (its video, plus its audio when the clip has sound)."""
        if hasattr(capture, "waveform") and hasattr(capture, "sample_rate"):
            return [self.from_audio_array(capture.waveform, capture.sample_rate)]
        if hasattr(capture, "frames") and hasattr(capture, "save"):
            with tempfile.TemporaryDirectory(prefix="gemma-desk-clip-") as tmp:
                files = capture.save(tmp, stem="clip")
                out = [self.from_path(files.video, filename="Camera clip.mp4")]
                if files.audio is not None:
                    out.append(self.from_path(files.audio, filename="Camera clip audio.wav"))
                return out
        if isinstance(capture, (str, os.PathLike)):
            return [self.from_path(capture)]
        raise UnsupportedMediaError(f"Cannot attach a capture of type {type(capture).__name__}.")

    def ingest_many(
        self, paths: Sequence[str | os.PathLike[str]]
    ) -> tuple[list[Attachment], list[MediaError]]:
        """Ingest several dropped files; bad ones are returned as errors, good ones still attach."""
        good: list[Attachment] = []
        bad: list[MediaError] = []
        for p in paths:
            try:
                good.append(self.from_path(p))
            except MediaError as exc:
                bad.append(exc)
        return good, bad

    # -- per kind ------------------------------------------------------------------------

    def _document(
        self, path: Path, filename: str, not_media: MediaError | None = None
    ) -> Attachment:
        from app.documents import DocumentOptions
        from app.documents.errors import BinaryFileError, UnsupportedDocumentError
        from app.documents.text import TEXT_EXTENSIONS, text_kind
        from app.inputs.ingest import ingest_document

        options = DocumentOptions()
        if self.processor_config is not None:
            options = DocumentOptions.from_processor_config(self.processor_config)
        try:
            record = ingest_document(
                self.media, path, filename, options=options, count=self.count_tokens
            )
        except (BinaryFileError, UnsupportedDocumentError) as exc:
            named_as_text = path.suffix.lower() in TEXT_EXTENSIONS or text_kind(path)[0] != "text"
            if not_media is not None and not named_as_text:
                raise not_media from exc  # neither media nor text: "attach images, audio, ..."
            raise
        return Attachment.from_record(record, filename)

    def _store(
        self, path: Path, kind: str, mime: str, ext: str, filename: str, meta: dict[str, Any]
    ) -> MediaRecord:
        return self.media.add_file(
            path, kind=kind, mime=mime, ext=ext, meta={**meta, "filename": filename}
        )

    def _image(self, path: Path, filename: str, mime: str, ext: str) -> Attachment:
        from mlx_model.processing.image import load_image

        size = path.stat().st_size
        if size > self.limits.max_image_bytes:
            raise MediaTooLargeError(
                f"The image “{filename}” is {size / 2**20:.0f} MB; the limit is {self.limits.max_image_bytes / 2**20:.0f} MB.",
                source=str(path),
                limit=f"{self.limits.max_image_bytes} bytes",
            )
        rgb = _with_extension(
            path,
            ext,
            lambda p: load_image(
                p, max_pixels=self.limits.max_image_pixels, max_bytes=self.limits.max_image_bytes
            ),
            filename,
        )
        height, width = rgb.shape[:2]
        record = self._store(path, "image", mime, ext, filename, {"width": width, "height": height})
        self.media.set_thumbnail(record.sha256, image_thumbnail(rgb))
        return Attachment.from_record(self.media.get(record.sha256), filename)

    def _audio(self, path: Path, filename: str, mime: str, ext: str) -> Attachment:
        from app.recordings import probe_recording
        from mlx_model.processing.audio import SAMPLE_RATE, load_audio
        from mlx_model.processing.errors import MediaTooLongError

        limit = self.limits.max_audio_s
        duration = _with_extension(path, ext, lambda p: probe_recording(p, name=filename), filename)
        if duration is not None and duration > limit + 1e-6:
            return self._long_audio(path, filename, mime, ext, duration)
        # A copy under the real extension lets the decoders pick the right demuxer.
        try:
            clips = _with_extension(
                path, ext, lambda p: load_audio(p, SAMPLE_RATE, max_clip_seconds=limit), filename
            )
        except MediaTooLongError as exc:  # the header did not say how long it is
            return self._long_audio(path, filename, mime, ext, exc.duration_s or limit)
        waveform = clips[0]
        meta = {
            "duration_s": round(len(waveform) / SAMPLE_RATE, 3),
            "sample_rate": SAMPLE_RATE,
            "waveform": waveform_preview(waveform),
        }
        record = self._store(path, "audio", mime, ext, filename, meta)
        return Attachment.from_record(record, filename)

    def _long_audio(
        self, path: Path, filename: str, mime: str, ext: str, duration: float
    ) -> Attachment:
        """A recording longer than one clip: stored whole, previewed by streaming it once."""
        from app.inputs.ingest import long_audio_meta
        from mlx_model.processing.audio import SAMPLE_RATE

        meta = _with_extension(
            path,
            ext,
            lambda p: long_audio_meta(p, filename, duration, self.limits.max_audio_s, SAMPLE_RATE),
            filename,
        )
        record = self._store(path, "audio", mime, ext, filename, meta)
        return Attachment.from_record(record, filename)

    def _long_video(self, path: Path, filename: str, mime: str, ext: str, info: Any) -> Attachment:
        """A video longer than one clip: header facts, a poster frame and a strip by seeking."""
        from app.inputs.ingest import long_video_preview

        frames = _with_extension(path, ext, lambda p: long_video_preview(p, info), filename)
        meta = {
            "duration_s": round(float(info.duration_s), 3),
            "width": int(info.width),
            "height": int(info.height),
            "fps": float(info.native_fps),
            "has_audio": bool(info.has_audio),
            "long": True,
        }
        record = self._store(path, "video", mime, ext, filename, meta)
        if frames:
            self.media.set_thumbnail(record.sha256, image_thumbnail(frames[0]))
            strip = self.media.write_derived(record.sha256, ".strip.jpg", frame_strip(frames))
            self.media.update_meta(record.sha256, frame_strip=strip.name)
        return Attachment.from_record(self.media.get(record.sha256), filename)

    def _video(self, path: Path, filename: str, mime: str, ext: str) -> Attachment:
        from app.recordings.video import probe_video
        from mlx_model.processing.video import load_video

        info = _with_extension(path, ext, lambda p: probe_video(p, filename), filename)
        if info.duration_s > self.limits.max_video_s + 1e-6:
            return self._long_video(path, filename, mime, ext, info)

        clip = _with_extension(
            path,
            ext,
            lambda p: load_video(p, fps=self.limits.video_fps, max_seconds=self.limits.max_video_s),
            filename,
        )
        frames = list(clip.frames)
        height, width = frames[0].shape[:2]
        has_video, has_audio = _probe_streams(path)
        meta = {
            "duration_s": round(float(clip.duration_s), 3),
            "width": int(width),
            "height": int(height),
            "fps": float(clip.native_fps),
            "has_audio": has_audio,
        }
        record = self._store(path, "video", mime, ext, filename, meta)
        self.media.set_thumbnail(record.sha256, image_thumbnail(frames[0]))
        strip_path = self.media.write_derived(record.sha256, ".strip.jpg", frame_strip(frames))
        self.media.update_meta(record.sha256, frame_strip=strip_path.name)
        return Attachment.from_record(self.media.get(record.sha256), filename)


def _with_extension(path: Path, ext: str, fn: Any, display_name: str) -> Any:
    """Call `fn(path)` through a link named like the user's file with the sniffed extension.

    The decoders pick their demuxer by extension, and the processing layer's messages name
    the file they were given: this way both see what the user sees.
    """
    stem = Path(display_name.replace(os.sep, "_")).stem or "media"
    wanted = f"{stem}{ext}"
    if path.name == wanted:
        return fn(path)
    with tempfile.TemporaryDirectory(prefix="gemma-desk-media-") as tmp:
        alias = Path(tmp) / wanted
        try:
            alias.symlink_to(path.resolve())
        except OSError:
            import shutil

            shutil.copyfile(path, alias)
        try:
            return fn(alias)
        except MediaError as exc:
            exc.source = str(path)
            raise
