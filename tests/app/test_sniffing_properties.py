"""Property: any bytes are sniffed to a known type or to nothing, and ingesting them gives an
attachment inside the media folder or a typed `MediaError`, never a crash or a stray file."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.attachments import AttachmentIngestor, sniff
from app.media_budget import audio_duration, image_size
from app.storage import open_storage
from app.storage.media import EXTENSION_PATTERN
from mlx_model.processing.errors import MediaError

MAGIC = [
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"II*\x00",
    b"MM\x00*",
    b"BM" + b"\x00" * 12,
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"RIFF\x00\x00\x00\x00AVI ",
    b"fLaC\x00\x00\x00\x22",
    b"FORM\x00\x00\x00\x00AIFF",
    b"caff",
    b"ID3\x04\x00",
    b"\xff\xfb\x90",
    b"OggS\x00\x02",
    b"\x1a\x45\xdf\xa3webm",
    b"\x00\x00\x00\x18ftypisom",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypM4A ",
    b"\x00\x00\x00\x14ftypqt  ",
]


def _valid() -> list[bytes]:
    files = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 12), (200, 10, 10)).save(buffer, format=fmt)
        files.append(buffer.getvalue())
    for fmt in ("WAV", "FLAC"):
        buffer = io.BytesIO()
        soundfile.write(buffer, np.zeros(1600, np.float32), 16000, format=fmt)
        files.append(buffer.getvalue())
    return files


VALID = _valid()


def _damage(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(data[: max(1, cut)])
    for index, value in flips:
        damaged[index % len(damaged)] = value
    return bytes(damaged)


CONTENT = (
    st.binary(max_size=64)
    | st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGIC), st.binary(max_size=2048))
    | st.sampled_from(VALID)
    | st.builds(
        _damage,
        st.sampled_from(VALID),
        st.integers(1, 4096),
        st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=3),
    )
)


@settings(max_examples=400, deadline=None)
@given(head=CONTENT)
def test_sniffing_any_bytes_gives_a_known_type_or_none(head: bytes) -> None:
    found = sniff(head[:64])
    if found is not None:
        kind, mime, ext = found
        assert kind in ("image", "audio", "video", "container")
        assert "/" in mime and EXTENSION_PATTERN.fullmatch(ext)


@settings(max_examples=200, deadline=None)
@given(data=CONTENT)
def test_measuring_any_bytes_gives_a_size_or_a_typed_error(data: bytes) -> None:
    for measure in (image_size, audio_duration):
        with contextlib.suppress(MediaError):  # anything else fails the test
            measure(data)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=CONTENT)
# A damaged FLAC that decoded to zero channels and crashed the downmix once.
@example(
    data=b'fLaC\x00\x00\x00"\x10\x00\x10\x00\x00\x00\r\x00\x00\r\x03\xe8\x00\xf0\x00\x00\x06@'
    b"\x9f\n\xdf\xdb\xe7@\xcb\x9c\xd8\x18\x8a5v\x1e$v\x84\x00\x00( \x00\x00\x00reference libFLAC "
    b"1.4.3 20230623\x00\x00\x00\x00\x00\xf8u\x08\x00\x06?4\x00\x00\x00g\xbf"
)
# One whose header promises more than a clip of audio and whose frames end early (a seek
# inside libsndfile failed mid-read once).
@example(
    data=b'fLaC\x00\x00\x00"\x10\x00\x10\x00\x00\x00\r\x00\x00\r\x03\xe8\x00\xf0\x01\x00\x06@'
    b"\x9f\n\xdf\xdb\xe7@\xcb\x9c\xd8\x18\x8a5v\x1e$v\x84\x00\x00( \x00\x00\x00reference libFLAC "
    b"1.4.3 20230623\x00\x00\x00\x00\xff\xf8u\x08\x00\x06?4\x00\x00\x00g\xbf"
)
def test_ingesting_any_bytes_gives_a_stored_attachment_or_a_typed_error(
    tmp_path: Path, data: bytes
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    with open_storage(root / "data") as storage:
        try:
            attachment = AttachmentIngestor(storage.media).from_bytes(data, filename="x/../../y")
        except MediaError as exc:
            event(f"refused: {type(exc).__name__}")
            assert str(exc)
        else:
            event(f"stored {attachment.kind}")
            assert attachment.path.resolve().is_relative_to((root / "data" / "media").resolve())
    after = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.is_relative_to(root / "data") for p in after - before)
