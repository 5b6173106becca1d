"""Bad media: each case raises exactly one typed `MediaError` whose message names the file (and limit)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mlx_model.processing import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
)
from tests.mlx_model.processing.processing_media import png_bytes, textured_rgb, write_video


def zero_byte(tmp: Path) -> tuple[dict, str]:
    path = tmp / "empty.jpg"
    path.write_bytes(b"")
    return {"type": "image", "image": str(path)}, "empty.jpg"


def truncated_jpeg(tmp: Path) -> tuple[dict, str]:
    from PIL import Image

    path = tmp / "cut.jpg"
    Image.fromarray(textured_rgb(256, 256)).save(path, format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return {"type": "image", "image": str(path)}, "cut.jpg"


def text_named_png(tmp: Path) -> tuple[dict, str]:
    path = tmp / "notes.png"
    path.write_text("these are my shopping notes, not a picture\n")
    return {"type": "image", "image": str(path)}, "notes.png"


def decompression_bomb_png(tmp: Path) -> tuple[dict, str]:
    """A valid 1-bit 30000×30000 PNG (900 megapixels) that compresses to ~100 KB."""
    width = height = 30_000
    row = b"\x00" + b"\x00" * (width // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path = tmp / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    assert path.stat().st_size < 2_000_000
    return {"type": "image", "image": str(path)}, "bomb.png"


def nan_audio(tmp: Path) -> tuple[dict, str]:
    samples = np.zeros(16_000, np.float32)
    samples[100] = np.nan
    samples[200] = np.inf
    return {"type": "audio", "audio": (samples, 16_000)}, "recording"


def nan_audio_file(tmp: Path) -> tuple[dict, str]:
    path = tmp / "glitch.wav"
    samples = np.zeros(16_000, np.float32)
    samples[10] = np.nan
    sf.write(path, samples, 16_000, subtype="FLOAT")
    return {"type": "audio", "audio": str(path)}, "glitch.wav"


def two_hour_audio(tmp: Path) -> tuple[dict, str]:
    # 2 h at 1 kHz, 8-bit: a real, playable 7 MB file (the limit is checked from the header).
    path = tmp / "lecture.wav"
    sf.write(path, np.zeros(2 * 3600 * 1000, np.float32), 1000, subtype="PCM_U8")
    return {"type": "audio", "audio": str(path)}, "lecture.wav"


def video_without_frames(tmp: Path) -> tuple[dict, str]:
    import av

    path = tmp / "blank.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    container.start_encoding()
    container.close()
    return {"type": "video", "video": str(path)}, "blank.mp4"


def unsupported_codec(tmp: Path) -> tuple[dict, str]:
    # An MP4 whose sample entry names a codec no decoder knows ("zzzz" instead of "avc1").
    path = write_video(tmp / "alien.mp4", seconds=1, fps=5, size=(64, 48))
    path.write_bytes(path.read_bytes().replace(b"avc1", b"zzzz"))
    return {"type": "video", "video": str(path)}, "alien.mp4"


def text_named_mp4(tmp: Path) -> tuple[dict, str]:
    path = tmp / "movie.mp4"
    path.write_text("not a movie")
    return {"type": "video", "video": str(path)}, "movie.mp4"


def text_named_wav(tmp: Path) -> tuple[dict, str]:
    path = tmp / "song.wav"
    path.write_text("not a song")
    return {"type": "audio", "audio": str(path)}, "song.wav"


CASES = {
    "zero_byte_file": (zero_byte, CorruptMediaError),
    "truncated_jpeg": (truncated_jpeg, CorruptMediaError),
    "text_file_named_png": (text_named_png, UnsupportedMediaError),
    "decompression_bomb_png": (decompression_bomb_png, MediaTooLargeError),
    "nan_inf_audio_samples": (nan_audio, CorruptMediaError),
    "nan_audio_file": (nan_audio_file, CorruptMediaError),
    "two_hour_audio": (two_hour_audio, MediaTooLongError),
    "video_with_no_frames": (video_without_frames, CorruptMediaError),
    "unsupported_codec": (unsupported_codec, UnsupportedMediaError),
    "text_file_named_mp4": (text_named_mp4, CorruptMediaError),
    "text_file_named_wav": (text_named_wav, CorruptMediaError),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_media_raises_one_typed_error_with_a_ui_message(processor, tmp_path, case):
    make, error_type = CASES[case]
    block, name = make(tmp_path)
    messages = [{"role": "user", "content": [block, {"type": "text", "text": "What is this?"}]}]
    with pytest.raises(MediaError) as info:
        processor.apply_chat_template(messages)
    assert type(info.value) is error_type
    message = str(info.value)
    assert name in message.lower() or name in message
    assert (
        message[0].isupper()
        and message.endswith(".")
        and "Traceback" not in message
        and "\n" not in message
    )


def test_limit_is_named_for_size_and_length_errors(processor, tmp_path):
    for make, expected in ((decompression_bomb_png, "100 megapixels"), (two_hour_audio, "30 s")):
        block, _ = make(tmp_path)
        with pytest.raises(MediaError, match=expected):
            processor.apply_chat_template([{"role": "user", "content": [block]}])


def test_two_hour_audio_is_refused_even_when_splitting(processor, tmp_path):
    block, _ = two_hour_audio(tmp_path)
    with pytest.raises(MediaTooLongError, match="10 min"):
        processor.apply_chat_template([{"role": "user", "content": [block]}], long_audio="split")


def test_processor_keeps_working_after_bad_media(processor, tmp_path):
    block, _ = truncated_jpeg(tmp_path)
    with pytest.raises(CorruptMediaError):
        processor.apply_chat_template([{"role": "user", "content": [block]}])
    good = {"type": "image", "image": textured_rgb(64, 64)}
    out = processor.apply_chat_template([{"role": "user", "content": [good]}])
    assert out["pixel_values"].shape[0] == 1


def test_in_memory_png_bytes_are_not_mistaken_for_a_path(processor):
    with pytest.raises(UnsupportedMediaError):
        processor.apply_chat_template(
            [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": png_bytes(textured_rgb(8, 8))}],
                }
            ]
        )
