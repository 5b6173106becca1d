"""Test media made on the fly: pictures, tones, encoded audio and video."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def textured_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-noise RGB uint8 picture (structure at several scales, like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [
        128 + 90 * np.sin(x / (17.0 + 9 * c) + c) * np.cos(y / (13.0 + 5 * c)) for c in range(3)
    ]
    picture = np.stack(channels, axis=-1) + rng.normal(0, 18, (height, width, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)


def save_image(path: Path, array: np.ndarray, fmt: str | None = None, **options) -> Path:
    Image.fromarray(array).save(path, format=fmt, **options)
    return path


def jpeg_with_orientation(path: Path, array: np.ndarray, orientation: int) -> Path:
    """A JPEG whose pixels are stored as `array` with an EXIF Orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


def tone(
    seconds: float, rate: int = 16_000, freq: float = 440.0, channels: int = 1, seed: int = 0
) -> np.ndarray:
    """A tone plus a little noise, [n] or [n, channels] float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.shape)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=-1).astype(
        np.float32
    )


def write_video(
    path: Path,
    seconds: float,
    fps: int = 10,
    size: tuple[int, int] = (160, 96),
    codec: str = "libx264",
    audio_rate: int | None = None,
    container_format: str | None = None,
) -> Path:
    """Encode a moving test pattern (and optionally a tone as sound) with PyAV."""
    import av

    width, height = size
    base = textured_rgb(height, width * 2, seed=1)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        audio_stream = None
        if audio_rate:
            audio_codec = (
                "libopus" if (container_format == "webm" or str(path).endswith(".webm")) else "aac"
            )
            audio_stream = container.add_stream(
                audio_codec, rate=audio_rate if audio_codec == "aac" else 48000
            )
            audio_stream.layout = "mono"
        for i in range(int(round(seconds * fps))):
            shift = (i * 3) % width
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, shift : shift + width]), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            rate = audio_stream.rate
            samples = tone(seconds, rate)
            step = 1024
            for start in range(0, len(samples), step):
                chunk = samples[start : start + step][None, :]
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="flt", layout="mono"
                )
                frame.sample_rate = rate
                frame.pts = start
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


def encode_audio(
    path: Path, samples: np.ndarray, rate: int, codec: str, container_format: str | None = None
) -> Path:
    """Encode mono float samples with PyAV (for formats soundfile cannot write, e.g. AAC/M4A)."""
    import av

    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        step = 1024
        for start in range(0, len(samples), step):
            chunk = np.ascontiguousarray(samples[start : start + step][None, :].astype(np.float32))
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
