"""Generated media for the capture tests: tones, speech (espeak-ng), and video files.

Plain helpers plus fixtures; test modules import what they need from here
(tests/app/conftest.py belongs to another part of the suite).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

ESPEAK = shutil.which("espeak-ng")


def tone(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine wave."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def dominant_frequency(waveform: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the largest FFT bin of a Hann-windowed signal."""
    spectrum = np.abs(np.fft.rfft(waveform * np.hanning(len(waveform))))
    return float(np.fft.rfftfreq(len(waveform), 1.0 / rate)[np.argmax(spectrum)])


def rms(waveform: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))


def speech_wav(path: Path, text: str = "Hello Gemma, what is in this picture?") -> Path:
    """Speak `text` into a WAV with espeak-ng (skips the test, with the reason, when absent)."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng) - no synthetic speech")
    subprocess.run([ESPEAK, "-w", str(path), text], check=True, timeout=30, capture_output=True)
    return path


def write_numbered_video(
    path: Path, seconds: float, fps: int, size: tuple[int, int] = (96, 64)
) -> Path:
    """An MJPEG AVI whose frame brightness encodes its second: 20 + 20 * (second mod 11).

    Written with OpenCV; the brightness survives compression well enough (±6) to tell
    which second a kept frame came from.
    """
    import cv2

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for index in range(int(round(seconds * fps))):
        second = index // fps
        frame = np.full((height, width, 3), second_brightness(second), np.uint8)
        writer.write(frame)
    writer.release()
    return path


def second_brightness(second: int) -> int:
    return 20 + 20 * (second % 11)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll until `predicate()` is true; bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def write_wav(path: Path, waveform: np.ndarray, rate: int) -> Path:
    soundfile.write(str(path), waveform, rate)
    return path
