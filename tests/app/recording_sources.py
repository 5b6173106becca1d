"""Generated long recordings and videos for the recording tests and the benchmark."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile

from tests.app.media_sources import speech_wav

SENTENCES = [
    "Good morning everyone, let us start the sprint planning.",
    "The first item is the login page, which still fails on older phones.",
    "Maria will fix the crash before Friday.",
    "Next, the billing export needs a new column for the tax rate.",
    "Tom takes the export, and he will ask finance about the format.",
    "Any other questions before we move on?",
]


def spoken_sentences() -> tuple[list[np.ndarray], int]:
    """Each sentence spoken by espeak-ng: (float32 waveforms, their sample rate); skips the
    test, with the reason, when espeak-ng is not installed."""
    waves, rate = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(SENTENCES):
            path = speech_wav(Path(tmp) / f"{i}.wav", text)
            data, rate = soundfile.read(str(path), dtype="float32")
            waves.append(data)
    return waves, rate


def write_spoken_recording(path: Path, seconds: float, subtype: str = "PCM_16") -> Path:
    """Speech with a second of silence after each sentence, repeated to `seconds`, written
    block by block (never held whole)."""
    waves, rate = spoken_sentences()
    pause = np.zeros(rate, np.float32)
    total = int(round(seconds * rate))
    written = 0
    with soundfile.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype=subtype) as out:
        i = 0
        while written < total:
            block = np.concatenate([waves[i % len(waves)], pause])[: total - written]
            out.write(block)
            written += len(block)
            i += 1
    return path


def write_tone_video(path: Path, seconds: float, *, fps: int = 2, size=(64, 48)) -> Path:
    """A Matroska video (H.264, PCM sound) whose frame brightness encodes its second
    (`20 + 20 * (second % 11)`) and whose sound is a 440 Hz tone. PCM keeps writing fast."""
    import av

    rate = 16_000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "g": str(fps * 10)}
        audio = container.add_stream("pcm_s16le", rate=rate)
        audio.layout = "mono"
        for i in range(int(seconds * fps)):
            value = 20 + 20 * ((i // fps) % 11)
            frame = av.VideoFrame.from_ndarray(
                np.full((size[1], size[0], 3), value, np.uint8), format="rgb24"
            )
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for start in range(0, len(tone), rate):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + rate], format="s16", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path
