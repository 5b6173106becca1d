"""Attaching long inputs: documents and folders, and recordings or videos longer than one clip.

What `app.attachments.AttachmentIngestor` calls when a file is not a short media clip:

- `ingest_document`: read it (`app.documents.load_document`: typed errors for encrypted,
  empty, binary, oversized or zip-bomb files), store it (a folder as its snapshot) and
  record what its chip shows: kind, pages (or lines, files), tokens;
- `long_audio_meta`: the duration from the header and a waveform preview made by streaming
  the file once (a few seconds in memory at a time, never the recording);
- `long_video_preview`: the header's facts and a handful of frames found by seeking (a
  poster frame and a strip), never decoding the whole video.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.documents import Document, DocumentOptions, TokenCounter, load_document
from app.inputs.documents import CODEBASE_MIME, MIMES, snapshot
from app.inputs.facts import estimate_tokens
from app.recordings import clip_spans, read_blocks
from app.recordings.video import VideoInfo
from app.storage.media import MediaRecord, MediaStore

WAVEFORM_BINS = 100
PREVIEW_FRAMES = 8


def document_meta(document: Document, count: TokenCounter | None) -> dict[str, Any]:
    """What a document's chip and the plan need: kind, size, pages or files, tokens."""
    tokens = document.token_count(count or estimate_tokens)
    meta: dict[str, Any] = {
        "document_kind": document.kind,
        "size_label": document.size_label,
        "tokens": int(tokens),
        "tokens_estimated": count is None,
    }
    if document.page_count is not None:
        meta["pages"] = document.page_count
        meta["scanned_pages"] = [image.page for image in document.images]
    if document.line_count is not None:
        meta["lines"] = document.line_count
    if document.kind == "codebase":
        meta["files"] = len(document.files)
        meta["skipped"] = document.skipped[:50]
    if document.encoding:
        meta["encoding"] = document.encoding
    if document.language:
        meta["language"] = document.language
    return meta


def ingest_document(
    media: MediaStore,
    path: Path,
    filename: str,
    *,
    options: DocumentOptions | None = None,
    count: TokenCounter | None = None,
) -> MediaRecord:
    """Read and store a document or folder (kind "document"); raises a typed `DocumentError`."""
    document = load_document(path, name=filename, options=options)
    meta = {**document_meta(document, count), "filename": filename}
    if document.kind == "codebase":
        return media.add_bytes(
            snapshot(document), kind="document", mime=CODEBASE_MIME, ext=".json", meta=meta
        )
    suffix = path.suffix.lower() if 0 < len(path.suffix) <= 12 else ""
    ext = {"pdf": ".pdf", "docx": ".docx"}.get(document.kind, suffix or ".txt")
    mime = MIMES.get(document.kind, "application/octet-stream")
    return media.add_file(path, kind="document", mime=mime, ext=ext, meta=meta)


def long_audio_meta(
    path: Path, name: str, duration_s: float, clip_seconds: float, sampling_rate: int
) -> dict[str, Any]:
    """Meta of a recording longer than one clip: duration, clip count, waveform preview."""
    rate, blocks = read_blocks(path, name=name)
    total = max(1, int(math.ceil(duration_s * rate)))
    peaks = np.zeros(WAVEFORM_BINS, np.float32)
    seen = 0
    for block in blocks:
        if not len(block):
            continue
        bins = np.minimum((np.arange(seen, seen + len(block)) * WAVEFORM_BINS) // total,
                          WAVEFORM_BINS - 1)  # fmt: skip
        np.maximum.at(peaks, bins, np.abs(block))
        seen += len(block)
    measured = seen / rate if seen else duration_s
    return {
        "duration_s": round(measured, 3),
        "sample_rate": sampling_rate,
        "waveform": [round(float(min(1.0, p)), 4) for p in peaks],
        "clips": len(clip_spans(measured, clip_seconds)),
        "long": True,
    }


def long_video_preview(
    path: Path, info: VideoInfo, count: int = PREVIEW_FRAMES
) -> list[np.ndarray]:
    """About `count` RGB frames spread over the video, each found by seeking to its time."""
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        for k in range(count):
            at = info.duration_s * (k + 0.5) / count
            try:
                container.seek(int(at / base) if base else int(at * 1e6), stream=stream)
                frame = next(container.decode(stream), None)
            except (av.error.FFmpegError, StopIteration):
                frame = None
            if frame is not None:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def token_counter_for(path: str | Path) -> Callable[[str], int]:
    """The checkpoint's tokenizer as a counter (loaded once, on first use)."""
    loaded: list[Any] = []

    def count(text: str) -> int:
        if not loaded:
            from mlx_model.processing.tokenizer import Tokenizer

            loaded.append(Tokenizer.from_pretrained(path))
        return len(loaded[0].encode(text))

    return count
