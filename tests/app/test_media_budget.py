"""The per-request media budget in the app: files measured from their headers (never decoded)
before the CLI or the GUI sends them, with typed errors naming the file and the limit."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from app.attachments import Attachment
from app.cli import main
from app.conversation_controller import ConversationController
from app.engine_service import EngineService
from app.media_budget import (
    MediaBudget,
    audio_duration,
    check_files,
    image_size,
    video_duration,
)
from mlx_model.processing.errors import (
    CorruptMediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
)
from tests.doubles import fake_factory


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"x") + chunk(b"IEND", b"")


def flac_of_silence(path: Path, seconds: float, rate: int = 8000) -> Path:
    with soundfile.SoundFile(path, "w", rate, 1, format="FLAC") as sound:
        block = np.zeros(rate * 60, dtype=np.int16)
        left = int(seconds * rate)
        while left > 0:
            sound.write(block[: min(left, block.size)])
            left -= block.size
    return path


def mp4(path: Path, seconds: int, fps: int = 5) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_sizes_and_lengths_come_from_headers(tmp_path: Path) -> None:
    assert image_size(png_header_only(12_000, 9_000)) == (12_000, 9_000)
    clip = flac_of_silence(tmp_path / "long.flac", 3 * 3600)
    started = time.monotonic()
    assert audio_duration(clip) == pytest.approx(3 * 3600)
    assert audio_duration(clip.read_bytes()) == pytest.approx(3 * 3600)
    assert time.monotonic() - started < 1
    assert video_duration(mp4(tmp_path / "clip.mp4", 4)) == pytest.approx(4, abs=0.5)


@pytest.mark.parametrize(
    ("probe", "data", "error"),
    [
        (image_size, png_header_only(0, 10), UnsupportedMediaError),
        (image_size, b"plain text", UnsupportedMediaError),
        (audio_duration, b"RIFF....WAVEfmt broken", CorruptMediaError),
    ],
)
def test_unreadable_headers_are_typed_errors(probe, data, error) -> None:
    with pytest.raises(error):
        probe(data)


def test_files_over_the_budget_are_refused_naming_the_file(tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(12_000, 12_000))
    with pytest.raises(MediaTooLargeError, match="“huge.png” is 12000×12000 .* per image"):
        check_files([("image", huge)], MediaBudget())
    long_clip = flac_of_silence(tmp_path / "talk.flac", 2 * 3600)
    with pytest.raises(MediaTooLongError, match="“talk.flac” is 2 h 0 min long"):
        check_files([("audio", long_clip)], MediaBudget(), max_clip_s=30)
    clip = mp4(tmp_path / "clip.mp4", 4)
    with pytest.raises(MediaTooLongError, match="of video; the limit is 6 s per request"):
        check_files([("video", clip), ("video", clip)], MediaBudget(max_video_s=6))


def test_the_cli_refuses_over_budget_media_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(12_000, 12_000))
    missing_model = tmp_path / "no-model-needed"
    missing_model.mkdir()
    started = time.monotonic()
    code = main(["generate", "--model", str(missing_model), "--prompt", "Hi", "--image", str(huge)])
    assert code == 2 and time.monotonic() - started < 2
    assert "144 megapixels" in capsys.readouterr().err


def attachment(kind: str, name: str, **meta) -> Attachment:
    return Attachment(
        sha256="0" * 64, kind=kind, mime="", filename=name, size=1, path=Path(name),
        thumbnail=None, meta=meta,
    )  # fmt: skip


def test_the_gui_refuses_a_message_whose_attachments_are_over_the_budget(storage) -> None:
    service = EngineService(engine_factory=fake_factory())
    controller = ConversationController(storage, service)
    try:
        conv = controller.new_conversation()
        photos = [attachment("image", f"p{i}.jpg", width=8000, height=6000) for i in range(3)]
        with pytest.raises(MediaTooLargeError, match="“p2.jpg”.*100 megapixels per request"):
            controller.send(conv.id, "Compare these", photos)
        talks = [attachment("audio", f"t{i}.wav", duration_s=400.0) for i in range(2)]
        with pytest.raises(MediaTooLongError, match="“t1.wav”.*10 min per request"):
            controller.send(conv.id, "Summarize", talks)
        assert storage.conversations.messages(conv.id) == []  # nothing was stored or sent
    finally:
        controller.close()
        service.shutdown()


def test_pasted_bytes_are_measured_like_files(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(16000, np.float32), 16000, format="WAV")
    assert audio_duration(buffer.getvalue()) == pytest.approx(1.0)


def test_attaching_an_image_over_the_per_image_budget_fails_from_its_header(
    storage, tmp_path: Path
) -> None:
    from app.attachments import AttachmentIngestor

    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(8_000, 7_000))  # 56 MP: over 50 MP, garbage pixels
    with pytest.raises(MediaTooLargeError, match="56 megapixels"):
        AttachmentIngestor(storage.media).from_path(huge)
    assert storage.media.disk_usage() == 0
