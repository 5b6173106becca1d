"""Media in chat requests: `image_url` data URLs or allowed file paths, and `input_audio`.

Two steps, so that no request can take the machine's memory. When the request is parsed,
each image and clip is only measured from its header (`app.media_budget`) and counted
against the server's per-request `MediaBudget` (413 for images over it, 400 for audio);
it stays as its compressed bytes (`PendingImage`, `PendingAudio`). Only when the request's
turn in the queue comes does `prepare_media` hand them to the engine: images as files in a
private folder for the request (the processor decodes them one at a time, each freed once
cut into patches, so a request never holds all its pixels at once), audio decoded to
`(samples, rate)`, never longer than its header said. File paths from allowed folders are
passed as they are.

Nothing is fetched from the network: `http(s)` image URLs are refused. A file path must
resolve (symlinks included) inside a folder the user allowed; anything else is a 400.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from app.errors import ErrorKind, http_status, kind_of
from app.media_budget import BudgetTally, audio_duration, image_size
from app.server.errors import APIError, bad_request
from mlx_model.processing.errors import MediaError, MediaTooLongError

_AUDIO_FORMATS = {"wav", "mp3", "flac", "ogg", "aiff", "aif"}


def _decode_base64(data: str, *, what: str, param: str, max_bytes: int) -> bytes:
    # Check the size before decoding: base64 is 4 characters for 3 bytes.
    if len(data) * 3 // 4 > max_bytes:
        raise APIError(
            413,
            f"{what} is larger than the {max_bytes} byte limit.",
            param=param,
            code="media_too_large",
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(
            f"{what} is not valid base64: {exc}", param=param, code="invalid_media"
        ) from exc


@dataclass(frozen=True)
class PendingImage:
    """An image measured from its header; `prepare_media` hands it over when its turn comes."""

    data: bytes
    width: int
    height: int
    param: str


@dataclass(frozen=True)
class PendingAudio:
    """An audio clip measured from its header; decoded when its request's turn comes."""

    data: bytes
    format: str
    seconds: float
    param: str


def media_api_error(exc: MediaError, param: str) -> APIError:
    """The HTTP answer for a media problem, by its kind (`app.errors`): 413 over a size limit,
    400 otherwise."""
    kind = kind_of(exc)
    code = "invalid_media" if kind is ErrorKind.MEDIA else str(kind)
    return APIError(http_status(kind), str(exc), param=param, code=code)


def load_image(
    url: str,
    *,
    param: str,
    max_bytes: int,
    allowed_folders: tuple[Path, ...],
    tally: BudgetTally,
) -> PendingImage | str:
    """An `image_url.url`, measured and counted: a `PendingImage` (data URL) or a checked path."""
    if url.startswith("data:"):
        header, sep, payload = url.partition(",")
        if not sep or ";base64" not in header:
            raise bad_request(
                "An image data URL must be base64 encoded (data:image/...;base64,...).", param=param
            )
        if not header[5:].startswith("image/"):
            raise bad_request(
                f"The data URL holds {header[5:].split(';')[0] or 'no type'}, not an image.",
                param=param,
            )
        raw = _decode_base64(payload, what="The image", param=param, max_bytes=max_bytes)
        try:
            width, height = image_size(raw, f"The image in {param}")
            tally.add_image(width, height, f"The image in {param}")
        except MediaError as exc:
            raise media_api_error(exc, param) from exc
        return PendingImage(raw, width, height, param)
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        raise bad_request(
            "Remote image URLs are not fetched (the server makes no network connections); "
            "send the image as a data URL.",
            param=param,
            code="remote_url_not_allowed",
        )
    if parsed.scheme == "file":
        path_text = unquote(parsed.path)
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and url[1:3] in (":\\", ":/")):
        path_text = url
    else:
        raise bad_request(f"Unsupported image URL scheme {parsed.scheme!r}.", param=param)
    path = allowed_file(
        path_text, param=param, max_bytes=max_bytes, allowed_folders=allowed_folders
    )
    try:
        name = f"The image {Path(path).name}"
        tally.add_image(*image_size(path, name), name)
    except MediaError as exc:
        raise media_api_error(exc, param) from exc
    return path


def allowed_file(
    path_text: str, *, param: str, max_bytes: int, allowed_folders: tuple[Path, ...]
) -> str:
    """The resolved path of a file inside an allowed folder; 400 for anything else."""
    if "\x00" in path_text:
        raise bad_request("Invalid file path.", param=param)
    candidate = Path(path_text).expanduser()
    if not candidate.is_absolute():
        raise bad_request("File paths must be absolute.", param=param)
    resolved = candidate.resolve()
    roots = [Path(f).expanduser().resolve() for f in allowed_folders]
    if not any(resolved.is_relative_to(root) for root in roots):
        raise bad_request(
            f"{path_text} is outside the folders this server may read"
            + ("" if roots else " (none are allowed)")
            + ".",
            param=param,
            code="path_not_allowed",
        )
    if not resolved.is_file():
        raise bad_request(f"No such file: {path_text}", param=param, code="file_not_found")
    if resolved.stat().st_size > max_bytes:
        raise APIError(
            413,
            f"{path_text} is larger than the {max_bytes} byte limit.",
            param=param,
            code="media_too_large",
        )
    return str(resolved)


def load_audio(part: Any, *, param: str, max_bytes: int, tally: BudgetTally) -> PendingAudio:
    """An `input_audio` part (`{"data": base64, "format": "wav"}`), measured from its header and
    counted; over the budget it is a 400. Longer than the model's own clip is fine: it goes in
    as consecutive clips, or is transcribed first (`app.inputs`)."""
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise bad_request("input_audio needs a base64 `data` string.", param=param)
    fmt = part.get("format", "wav")
    if not isinstance(fmt, str) or fmt.lower() not in _AUDIO_FORMATS:
        raise bad_request(
            f"Unsupported audio format {fmt!r} (use one of {', '.join(sorted(_AUDIO_FORMATS))}).",
            param=param,
        )
    fmt = fmt.lower()
    raw = _decode_base64(part["data"], what="The audio clip", param=param, max_bytes=max_bytes)
    name = f"The audio clip in {param}"
    try:
        seconds = audio_duration(raw, name)
        if not math.isfinite(seconds) or seconds <= 0:
            raise MediaTooLongError(f"{name} has no usable length ({seconds!r} s).")
        tally.add_audio(seconds, name)
    except MediaError as exc:
        raise media_api_error(exc, param) from exc
    return PendingAudio(raw, fmt, seconds, param)


def decode_audio(pending: PendingAudio) -> tuple[Any, int]:
    """`(mono float32 samples, rate)`, at most as many samples as the header announced."""
    import numpy as np
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(pending.data)) as sound:
            rate = sound.samplerate
            frames = math.ceil(pending.seconds * rate * 1.01) + rate  # headers may round
            samples = sound.read(frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError, TypeError) as exc:
        raise bad_request(
            f"The audio clip could not be decoded as {pending.format}: {exc}",
            param=pending.param,
            code="invalid_media",
        ) from exc
    if samples.shape[0] == 0:
        raise bad_request("The audio clip is empty.", param=pending.param, code="invalid_media")
    return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32)), int(rate)


def prepare_media(messages: list[dict[str, Any]], folder: str | Path) -> list[dict[str, Any]]:
    """The messages as the engine takes them: pending images written into `folder` (a private
    folder the caller removes when the generation has ended), pending clips decoded."""
    out = []
    count = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                value = part.get("image", part.get("audio"))
                if isinstance(value, PendingImage):
                    count += 1
                    path = Path(folder) / f"image-{count}"
                    path.write_bytes(value.data)
                    part = {**part, "image": str(path)}
                elif isinstance(value, PendingAudio):
                    part = {**part, "audio": decode_audio(value)}
                parts.append(part)
            message = {**message, "content": parts}
        out.append(message)
    return out


def load_document_part(part: Any, *, param: str, max_bytes: int) -> dict[str, Any]:
    """A `file` part (`{"file_data": base64 or a data URL, "filename": ...}`) read as a
    document, or 400 (413 over the size limits) saying why: the fields of a
    `{"type": "document"}` part."""
    from app.documents import DocumentError
    from app.inputs.documents import document_from_bytes
    from mlx_model.processing.errors import MediaTooLargeError

    if not isinstance(part, dict):
        raise bad_request("A `file` part needs a `file` object with `file_data`.", param=param)
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        if part.get("file_id"):
            raise bad_request(
                "Uploaded files (`file_id`) are not kept by this server; send the document as "
                "base64 `file_data`.",
                param=param,
                code="unsupported_file",
            )
        raise bad_request("A `file` part needs base64 `file_data`.", param=param)
    mime = ""
    if data.startswith("data:"):
        header, sep, data = data.partition(",")
        if not sep or ";base64" not in header:
            raise bad_request("`file_data` data URLs must be base64 encoded.", param=param)
        mime = header[5:].split(";")[0]
    raw = _decode_base64(data, what="The file", param=param, max_bytes=max_bytes)
    filename = part.get("filename")
    name = filename if isinstance(filename, str) and filename.strip() else "document"
    try:
        document = document_from_bytes(raw, name, mime)
    except DocumentError as exc:
        status = 413 if isinstance(exc, MediaTooLargeError) else 400
        raise APIError(status, str(exc), param=param, code="invalid_document") from exc
    return {"name": name, "document": document}
