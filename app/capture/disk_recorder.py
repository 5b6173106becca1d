"""Record mode: the microphone straight to disk, for any length, crash-safe.

`DiskRecorder(path).start()` ... `.stop()` writes 16-bit mono WAV at the model's rate
(resampled as a stream with soxr's HQ filter). Audio reaches the file as it arrives, and
about once a second the WAV header's two sizes are rewritten, so a process killed at any
moment leaves a playable file holding all but the last second; `repair_wav(path)` recovers
that second too (the bytes are on disk, only the header does not count them yet). WAV's
4 GB limit (37 h at 16 kHz) is met by starting `name-2.wav`, `name-3.wav`, ... in turn.
"""

from __future__ import annotations

import contextlib
import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.errors import CaptureError
from app.capture.microphone import LevelEvent, _level, _to_mono
from app.capture.sources import AudioSource, SoundDeviceSource

HEADER_BYTES = 44
MAX_DATA_BYTES = 0xFFFFFFFF - HEADER_BYTES - 1024


def _header(rate: int, data_bytes: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        rate,
        rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


class CrashSafeWavWriter:
    """16-bit mono WAV whose header is brought up to date by each `flush()`."""

    def __init__(self, path: str | os.PathLike[str], sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.data_bytes = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(self._fd, _header(self.sample_rate, 0))

    def write(self, samples: np.ndarray) -> None:
        """Append float samples in -1..1 (clipped) as 16-bit PCM."""
        pcm = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
        data = (np.round(pcm * 32767.0)).astype("<i2").tobytes()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.data_bytes += len(data)

    def flush(self, sync: bool = False) -> None:
        """Rewrite the header's sizes (bytes already written are the OS's once `write` returns)."""
        os.pwrite(self._fd, struct.pack("<I", 36 + self.data_bytes), 4)
        os.pwrite(self._fd, struct.pack("<I", self.data_bytes), 40)
        if sync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush(sync=True)
        os.close(self._fd)
        self._fd = -1

    @property
    def duration_s(self) -> float:
        return self.data_bytes / 2 / self.sample_rate


def repair_wav(path: str | os.PathLike[str]) -> float:
    """Make a WAV left by a killed recorder count every whole sample on disk; returns its seconds."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        header = f.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:4] != b"RIFF" or header[36:40] != b"data":
            raise CaptureError(f"“{path.name}” is not a recording this app wrote.")
        rate = struct.unpack("<I", header[24:28])[0]
        data = (size - HEADER_BYTES) // 2 * 2
        f.seek(4)
        f.write(struct.pack("<I", 36 + data))
        f.seek(40)
        f.write(struct.pack("<I", data))
        f.truncate(HEADER_BYTES + data)
    return data / 2 / rate


@dataclass(frozen=True)
class RecordedFiles:
    """What a record-mode session left on disk."""

    paths: list[Path]  # one file, or parts in order when a file reached WAV's size limit
    sample_rate: int
    duration_s: float
    device_name: str
    error: str | None = None  # why it stopped early (the files still hold what came before)


SourceFactory = Callable[[], AudioSource]


class DiskRecorder:
    """Record the microphone to `path` until `stop()`; see the module docstring.

    source_factory: builds the `AudioSource` (default: the real microphone `device`).
    on_level: live input level for a meter (on the writer thread; keep it short).
    on_error: the stream or the disk failed; the file so far stays playable.
    flush_seconds: how often the header is brought up to date (and the file fsync'ed).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source_factory: SourceFactory | None = None,
        *,
        device: int | str | None = None,
        target_rate: int = 16_000,
        flush_seconds: float = 1.0,
        max_data_bytes: int = MAX_DATA_BYTES,
        level_window_s: float = 0.1,
        on_level: Callable[[LevelEvent], None] | None = None,
        on_error: Callable[[CaptureError], None] | None = None,
        platform: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.target_rate = int(target_rate)
        self.flush_seconds = float(flush_seconds)
        self.max_data_bytes = int(max_data_bytes)
        self.level_window_s = float(level_window_s)
        self.on_level = on_level
        self.on_error = on_error
        self._source_factory = source_factory or (
            lambda: SoundDeviceSource(device, platform=platform)
        )
        self._queue: queue.Queue = queue.Queue()
        self._source: AudioSource | None = None
        self._worker: threading.Thread | None = None
        self._writer: CrashSafeWavWriter | None = None
        self._paths: list[Path] = []
        self._frames_written = 0
        self._error: CaptureError | None = None
        self._device_name = ""

    @property
    def is_recording(self) -> bool:
        return self._worker is not None

    @property
    def device_name(self) -> str:
        """The device recording (or that recorded last); "" before the first start."""
        return self._device_name

    @property
    def elapsed_s(self) -> float:
        """Seconds written to disk so far."""
        return self._frames_written / self.target_rate

    def start(self) -> None:
        """Open the source and the file and begin (raises `CaptureUnavailable`/`PermissionDenied`)."""
        if self._worker is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        source = self._source_factory()
        self._device_name = str(getattr(source, "name", "microphone"))
        self._paths = []
        self._frames_written = 0
        self._writer = self._open_part()
        self._source = source
        self._worker = threading.Thread(
            target=self._work, args=(int(source.sample_rate),), name="disk-recorder", daemon=True
        )
        self._worker.start()
        try:
            source.start(self._queue.put)
        except BaseException:
            self._queue.put(None)
            self._worker.join(timeout=5.0)
            self._worker = None
            self._writer.close()
            raise

    def stop(self) -> RecordedFiles:
        """Stop, finish the file(s) and say what was recorded (and why it ended early, if it did)."""
        source, self._source = self._source, None
        if source is not None:
            source.stop()
        worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout=30.0)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return RecordedFiles(list(self._paths), self.target_rate, self.elapsed_s, self._device_name)

    # ---------------------------------------------------------------- internals

    def _open_part(self) -> CrashSafeWavWriter:
        n = len(self._paths) + 1
        path = (
            self.path if n == 1 else self.path.with_name(f"{self.path.stem}-{n}{self.path.suffix}")
        )
        self._paths.append(path)
        return CrashSafeWavWriter(path, self.target_rate)

    def _work(self, native_rate: int) -> None:
        import soxr

        stream = (
            soxr.ResampleStream(native_rate, self.target_rate, 1, dtype="float32", quality="HQ")
            if native_rate != self.target_rate
            else None
        )
        window = max(1, int(self.level_window_s * native_rate))
        pending: list[np.ndarray] = []
        pending_frames = 0
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    block = self._queue.get(timeout=self.flush_seconds)
                except queue.Empty:
                    block = ...
                final = block is None
                if block is not None and block is not ...:
                    mono = _to_mono(block)
                    out = mono if stream is None else stream.resample_chunk(mono)
                    self._write(out)
                    pending.append(mono)
                    pending_frames += len(mono)
                    if pending_frames >= window:
                        if self.on_level is not None:
                            self.on_level(_level(np.concatenate(pending), self.elapsed_s))
                        pending, pending_frames = [], 0
                if final and stream is not None:
                    self._write(stream.resample_chunk(np.zeros(0, np.float32), last=True))
                now = time.monotonic()
                if final or now - last_flush >= self.flush_seconds:
                    assert self._writer is not None
                    self._writer.flush(sync=True)
                    last_flush = now
                if final:
                    return
        except OSError as exc:
            self._fail(CaptureError(f"The recording could not be written to disk: {exc}."))
        except Exception as exc:  # noqa: BLE001 - a failing listener or stream
            self._fail(CaptureError(f"The recording stopped: {exc}."))

    def _write(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32)
        writer = self._writer
        assert writer is not None
        room = (self.max_data_bytes - writer.data_bytes) // 2
        while len(samples) > room:
            writer.write(samples[:room])
            self._frames_written += room
            samples = samples[room:]
            writer.close()
            writer = self._writer = self._open_part()
            room = self.max_data_bytes // 2
        writer.write(samples)
        self._frames_written += len(samples)

    def _fail(self, error: CaptureError) -> None:
        self._error = error
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.flush(sync=True)
        if self.on_error is not None:
            self.on_error(error)
