"""Attachments: type sniffed from content, validated against the model's limits, stored with previews."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from app.attachments import AttachmentIngestor, MediaLimits, sniff, waveform_preview
from mlx_model.processing.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    UnsupportedMediaError,
)


@pytest.fixture
def ingestor(storage) -> AttachmentIngestor:
    return AttachmentIngestor(storage.media)


def png(width: int = 320, height: int = 200) -> bytes:
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, : width // 2] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def tone_wav(path: Path, seconds: float, rate: int = 44_100, amplitude: float = 0.5) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), amplitude * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    return path


def video_file(path: Path, seconds: float, fps: int = 10) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (96, 64))
    for i in range(int(seconds * fps)):
        frame = np.full((64, 96, 3), (i * 7) % 255, dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


# -- sniffing --------------------------------------------------------------------------------------


def test_type_comes_from_content_not_the_extension(ingestor, tmp_path: Path) -> None:
    disguised = tmp_path / "notes.txt"
    disguised.write_bytes(png())
    att = ingestor.from_path(disguised)
    assert (att.kind, att.mime, att.filename) == ("image", "image/png", "notes.txt")
    assert att.path.suffix == ".png" and att.path.read_bytes() == disguised.read_bytes()


def test_sniff_knows_common_formats() -> None:
    assert sniff(b"\xff\xd8\xff\xe0" + b"\0" * 20)[:2] == ("image", "image/jpeg")
    assert sniff(b"RIFF\0\0\0\0WAVEfmt ")[0] == "audio"
    assert sniff(b"fLaC\0\0\0\x22")[0] == "audio"
    assert sniff(b"\0\0\0\x18ftypheic\0\0\0\0")[0] == "image"
    assert sniff(b"\0\0\0\x18ftypisom\0\0\0\0")[0] == "container"
    assert sniff(b"hello, plain text") is None


def test_unsupported_file_gets_a_message_naming_it_and_what_works(ingestor, tmp_path: Path) -> None:
    blob = tmp_path / "firmware.bin"
    blob.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(
        UnsupportedMediaError, match=r"firmware\.bin.*images.*audio.*video.*documents.*folder"
    ):
        ingestor.from_path(blob)


def test_a_damaged_pdf_is_read_as_a_document_and_refused_as_damaged(
    ingestor, tmp_path: Path
) -> None:
    from app.documents import CorruptDocumentError

    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.7 not really")
    with pytest.raises(CorruptDocumentError, match=r"report\.pdf.*damaged"):
        ingestor.from_path(doc)


def test_corrupt_image_is_reported_as_damaged(ingestor, tmp_path: Path) -> None:
    broken = tmp_path / "photo.png"
    broken.write_bytes(png()[:60])
    with pytest.raises(CorruptMediaError, match="photo.png"):
        ingestor.from_path(broken)


def test_empty_and_missing_files_are_refused_clearly(ingestor, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(CorruptMediaError, match=r"empty\.jpg.*empty"):
        ingestor.from_path(empty)
    with pytest.raises(MediaError, match="could not be found"):
        ingestor.from_path(tmp_path / "gone.png")


# -- images ----------------------------------------------------------------------------------------


def test_image_gets_size_and_a_small_thumbnail(ingestor, tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    path.write_bytes(png(640, 200))
    att = ingestor.from_path(path)
    assert (att.width, att.height) == (640, 200)
    with Image.open(att.thumbnail) as thumb:
        assert max(thumb.size) == 256 and thumb.size[0] > thumb.size[1]


def test_pasted_bytes_are_ingested_and_identical_content_is_stored_once(ingestor, storage) -> None:
    data = png()
    a = ingestor.from_bytes(data, filename="clipboard.png")
    b = ingestor.from_bytes(data)
    assert a.sha256 == b.sha256 and a.path == b.path
    assert storage.db.query_one("SELECT COUNT(*) FROM media")[0] == 1
    assert a.filename == "clipboard.png"


def test_image_over_the_pixel_limit_names_the_limit(storage, tmp_path: Path) -> None:
    limits = MediaLimits.defaults()
    small = AttachmentIngestor(
        storage.media, MediaLimits(**{**limits.__dict__, "max_image_pixels": 10_000})
    )
    path = tmp_path / "big.png"
    path.write_bytes(png(200, 200))
    with pytest.raises(MediaTooLargeError, match=r"big\.png.*megapixels"):
        small.from_path(path)


# -- audio -----------------------------------------------------------------------------------------


def test_audio_gets_duration_and_a_waveform_preview(ingestor, tmp_path: Path) -> None:
    att = ingestor.from_path(tone_wav(tmp_path / "tone.wav", 2.0, amplitude=0.5))
    assert att.kind == "audio" and att.duration_s == pytest.approx(2.0, abs=0.01)
    assert len(att.waveform) == 100
    assert all(0.45 < v < 0.55 for v in att.waveform)


def test_audio_longer_than_one_clip_is_attached_as_a_recording(ingestor, tmp_path: Path) -> None:
    limit = ingestor.limits.max_audio_s
    att = ingestor.from_path(tone_wav(tmp_path / "lecture.wav", 2 * limit + 5, amplitude=0.5))

    assert att.kind == "audio" and att.filename == "lecture.wav"
    assert att.duration_s == pytest.approx(2 * limit + 5, abs=0.01)
    assert att.meta["long"] and att.meta["clips"] == 3
    assert len(att.waveform) == 100 and all(0.45 < v < 0.55 for v in att.waveform)


def test_audio_limit_comes_from_the_checkpoint(tiny_checkpoint: Path) -> None:
    config = json.loads((tiny_checkpoint / "processor_config.json").read_text())
    limits = MediaLimits.from_checkpoint(tiny_checkpoint)
    assert limits.max_audio_s == config["audio_seq_length"] * config["audio_ms_per_token"] / 1000


def test_microphone_recording_is_ingested_as_audio(ingestor) -> None:
    from app.capture.microphone import Recording

    rate = 16_000
    wave = (0.25 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)).astype(np.float32)
    recording = Recording(
        waveform=wave, sample_rate=rate, native_rate=48_000, device_name="Test mic", truncated=False
    )
    [att] = ingestor.from_capture(recording)
    assert att.kind == "audio" and att.duration_s == pytest.approx(1.0, abs=0.01)
    assert max(att.waveform) == pytest.approx(0.25, abs=0.02)


def test_waveform_preview_is_peak_per_bin() -> None:
    samples = np.zeros(1000, dtype=np.float32)
    samples[10] = -0.8
    preview = waveform_preview(samples, bins=10)
    assert preview[0] == pytest.approx(0.8) and preview[1:] == [0.0] * 9


# -- video -----------------------------------------------------------------------------------------


def test_video_gets_duration_thumbnail_and_frame_strip(ingestor, tmp_path: Path) -> None:
    disguised = video_file(tmp_path / "clip.mp4", seconds=3.0).rename(tmp_path / "clip.bin")
    att = ingestor.from_path(disguised)
    assert att.kind == "video" and att.mime == "video/mp4"
    assert att.duration_s == pytest.approx(3.0, abs=0.15)
    assert (att.width, att.height) == (96, 64)
    with Image.open(att.frame_strip) as strip:
        assert strip.height == 96 and strip.width > strip.height * 2
    assert att.thumbnail is not None and att.thumbnail.exists()


def test_video_longer_than_one_clip_is_attached_with_previews_found_by_seeking(
    storage, tmp_path: Path
) -> None:
    limits = MediaLimits.defaults()
    short = AttachmentIngestor(
        storage.media, MediaLimits(**{**limits.__dict__, "max_video_s": 2.0})
    )
    att = short.from_path(video_file(tmp_path / "long.mp4", seconds=4.0))

    assert att.kind == "video" and att.meta["long"]
    assert att.duration_s == pytest.approx(4.0, abs=0.15)
    assert att.thumbnail is not None and att.thumbnail.exists()
    with Image.open(att.frame_strip) as strip:
        assert strip.height == 96 and strip.width > strip.height * 2


def test_several_files_dropped_at_once_keep_the_good_ones(ingestor, tmp_path: Path) -> None:
    good = tmp_path / "ok.png"
    good.write_bytes(png())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    attached, errors = ingestor.ingest_many([good, bad])
    assert [a.filename for a in attached] == ["ok.png"]
    assert len(errors) == 1 and "bad.png" in str(errors[0])


def test_webcam_clip_becomes_a_video_and_its_audio(ingestor) -> None:
    from app.capture.camera import Clip
    from app.capture.microphone import Recording

    rate = 16_000
    frames = [np.full((48, 64, 3), v, dtype=np.uint8) for v in (10, 120, 240)]
    audio = Recording(
        waveform=(0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * rate) / rate)).astype(np.float32),
        sample_rate=rate,
        native_rate=rate,
        device_name="Test mic",
        truncated=False,
    )
    clip = Clip(
        frames=frames,
        frame_times=[0.0, 1.0, 2.0],
        duration_s=3.0,
        frames_per_second=1.0,
        audio=audio,
        truncated=False,
    )
    video, sound = ingestor.from_capture(clip)
    assert (video.kind, sound.kind) == ("video", "audio")
    assert video.meta["has_audio"] and sound.duration_s == pytest.approx(3.0, abs=0.05)
