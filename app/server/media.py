"""Media in chat requests: `image_url` data URLs or allowed file paths, and `input_audio`.

Images become PIL images (data URLs) or checked file paths; audio becomes `(samples, rate)`.
Nothing is fetched from the network: `http(s)` image URLs are refused. A file path must
resolve (symlinks included) inside a folder the user allowed; anything else is a 400.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from app.server.errors import APIError, bad_request

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


def load_image(url: str, *, param: str, max_bytes: int, allowed_folders: tuple[Path, ...]) -> Any:
    """An `image_url.url` as the engine takes it: a PIL image (data URL) or a checked path."""
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
        return decode_image_bytes(raw, param=param)
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
    return allowed_file(
        path_text, param=param, max_bytes=max_bytes, allowed_folders=allowed_folders
    )


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


def decode_image_bytes(raw: bytes, *, param: str) -> Any:
    """A fully decoded PIL image (RGB), or 400 when the bytes are not an image Pillow reads."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise bad_request(
            f"The image could not be decoded: {exc}", param=param, code="invalid_media"
        ) from exc
    return image.convert("RGB") if image.mode != "RGB" else image


def load_audio(part: Any, *, param: str, max_bytes: int) -> tuple[Any, int]:
    """An `input_audio` part (`{"data": base64, "format": "wav"}`) as `(mono float32 samples, rate)`."""
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        raise bad_request("input_audio needs a base64 `data` string.", param=param)
    fmt = str(part.get("format", "wav")).lower()
    if fmt not in _AUDIO_FORMATS:
        raise bad_request(
            f"Unsupported audio format {fmt!r} (use one of {', '.join(sorted(_AUDIO_FORMATS))}).",
            param=param,
        )
    raw = _decode_base64(part["data"], what="The audio clip", param=param, max_bytes=max_bytes)
    import numpy as np
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as exc:
        raise bad_request(
            f"The audio clip could not be decoded as {fmt}: {exc}",
            param=param,
            code="invalid_media",
        ) from exc
    if samples.shape[0] == 0:
        raise bad_request("The audio clip is empty.", param=param, code="invalid_media")
    return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32)), int(rate)
