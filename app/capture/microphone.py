"""Push-to-talk microphone recording: start on press, stop on release, 16 kHz mono out.

The recorder reads any `AudioSource` at its native rate, mixes it to mono, reports a live
level (RMS) for a meter, counts down the last seconds before the length cap (the model's
audio limit, passed in by the caller) and stops itself there. On stop the audio is
resampled once, band-limited, to the model's rate with the processing layer's `resample`.
Callbacks run on the recorder's worker thread (never PortAudio's real-time thread); keep
them short. The GUI wraps them in queued Qt signals.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.errors import (
    MIC_PERMISSION_HINT,
    Availability,
    CaptureError,
    CaptureUnavailable,
    PermissionDenied,
    is_mac,
)
from app.capture.sources import AudioDevice, AudioSource, SoundDeviceSource, list_audio_inputs

DEFAULT_TARGET_RATE = 16_000
DEFAULT_MAX_SECONDS = 30.0
SILENT_STREAM_MIN_SECONDS = 0.5  # an exactly-zero stream at least this long means "blocked"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class LevelEvent:
    """Live input level over the last `window_s` seconds (for a meter)."""

    rms: float  # 0..1 (full scale = 1)
    peak: float  # 0..1
    dbfs: float  # 20*log10(rms), -inf..0
    elapsed_s: float  # audio recorded so far


@dataclass(frozen=True)
class CountdownEvent:
    """`remaining_s` whole seconds are left before the recording stops at the cap."""

    remaining_s: int
    elapsed_s: float


@dataclass(frozen=True)
class Recording:
    """A finished recording: mono float32 at `sample_rate` (the model's rate)."""

    waveform: np.ndarray
    sample_rate: int
    native_rate: int
    device_name: str
    truncated: bool  # True when the length cap ended it

    @property
    def duration_s(self) -> float:
        return len(self.waveform) / self.sample_rate

    @property
    def peak(self) -> float:
        return float(np.max(np.abs(self.waveform))) if len(self.waveform) else 0.0

    def write_wav(self, path: str | Path) -> Path:
        """Write 16-bit PCM WAV (what the attachment layer ingests) and return the path."""
        import soundfile

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(
            str(path), np.clip(self.waveform, -1.0, 1.0), self.sample_rate, subtype="PCM_16"
        )
        return path


# --------------------------------------------------------------------------- availability


def availability() -> Availability:
    """Whether push-to-talk can be offered here, with the reason when it cannot."""
    try:
        devices = list_audio_inputs()
    except CaptureUnavailable as exc:
        return Availability(False, exc.reason)
    if not devices:
        return Availability(False, "No microphone found. Connect one and try again.")
    return Availability(True)


def list_devices() -> list[AudioDevice]:
    """Input devices for the device picker (raises `CaptureUnavailable` without PortAudio)."""
    return list_audio_inputs()


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling through the processing layer (the model sees the same filter)."""
    from mlx_model.processing.audio import resample as processing_resample

    return np.asarray(processing_resample(waveform, orig_rate, target_rate), dtype=np.float32)


# --------------------------------------------------------------------------- recorder

SourceFactory = Callable[[], AudioSource]


class MicrophoneRecorder:
    """Push-to-talk recorder: `start()` on press, `stop()` on release returns a `Recording`.

    source_factory: builds the `AudioSource` for each recording (default: the real
        microphone `device` through sounddevice at its native rate).
    max_seconds: length cap, derived by the caller from the model's audio limit.
    countdown_from: emit `CountdownEvent`s for the last N seconds.
    on_level / on_countdown: live events while recording.
    on_limit: the cap stopped the recording; receives the finished `Recording` (a later
        `stop()` returns the same one).
    on_error: a stream failed mid-recording; receives a `CaptureError`.
    """

    def __init__(
        self,
        source_factory: SourceFactory | None = None,
        *,
        device: int | str | None = None,
        target_rate: int = DEFAULT_TARGET_RATE,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        countdown_from: int = 10,
        level_window_s: float = 0.05,
        on_level: Callable[[LevelEvent], None] | None = None,
        on_countdown: Callable[[CountdownEvent], None] | None = None,
        on_limit: Callable[[Recording], None] | None = None,
        on_error: Callable[[CaptureError], None] | None = None,
        platform: str | None = None,
    ) -> None:
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.device = device
        self.target_rate = int(target_rate)
        self.max_seconds = float(max_seconds)
        self.countdown_from = int(countdown_from)
        self.level_window_s = float(level_window_s)
        self.on_level = on_level
        self.on_countdown = on_countdown
        self.on_limit = on_limit
        self.on_error = on_error
        self._platform = platform
        self._source_factory = source_factory or (
            lambda: SoundDeviceSource(self.device, platform=self._platform)
        )
        self._lock = threading.Lock()
        self._source: AudioSource | None = None
        self._worker: threading.Thread | None = None
        self._queue: queue.Queue = queue.Queue()
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._result: Recording | None = None
        self._error: CaptureError | None = None
        self._recording = False
        self._first_block = threading.Event()

    # ---------------------------------------------------------------- public API

    @property
    def device_name(self) -> str:
        """The device recording (or that recorded last); "" before the first start."""
        return getattr(self, "_source_name", "")

    @property
    def is_recording(self) -> bool:
        """True between `start()` and the end of the recording (stop, cap or error)."""
        return self._recording

    def set_device(self, device: int | str | None) -> None:
        """Use another input device from the next `start()` (default factory only)."""
        self.device = device

    def start(self) -> None:
        """Open the source and begin recording (raises `CaptureUnavailable`/`PermissionDenied`)."""
        with self._lock:
            if self._recording:
                return
            self._blocks, self._frames = [], 0
            self._result, self._error = None, None
            self._first_block.clear()
            self._queue = queue.Queue()
            source = self._source_factory()
            self._source = source
            self._native_rate = int(source.sample_rate)
            self._source_name = str(getattr(source, "name", "microphone"))
            self._max_frames = int(round(self.max_seconds * self._native_rate))
            self._worker = threading.Thread(target=self._work, name="mic-recorder", daemon=True)
            self._recording = True
            self._worker.start()
            try:
                source.start(self._queue.put)
            except BaseException:
                self._recording = False
                self._queue.put(None)
                self._worker.join(timeout=5.0)
                self._source = None
                raise

    def stop(self) -> Recording:
        """End the recording (key released) and return it resampled to `target_rate` mono.

        Raises `PermissionDenied` on a Mac when the stream was exactly silent (macOS feeds
        zeros to apps it has not allowed to listen), `CaptureError` when nothing arrived.
        """
        self._finish()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        """Stop and throw the audio away (e.g. Escape while holding the key)."""
        self._finish()
        self._result = None

    # ---------------------------------------------------------------- internals

    def _finish(self) -> None:
        with self._lock:
            source, self._source = self._source, None
            worker, self._worker = self._worker, None
        if source is not None:
            source.stop()  # returns once no more blocks can arrive
        if worker is not None:
            self._queue.put(None)
            if worker is not threading.current_thread():
                worker.join(timeout=10.0)
        if self._result is None and self._error is None:
            self._finalize(truncated=False)
        self._recording = False

    def _work(self) -> None:
        window = max(1, int(self.level_window_s * self._native_rate))
        pending: list[np.ndarray] = []
        pending_frames = 0
        last_countdown: int | None = None
        while True:
            block = self._queue.get()
            if block is None:
                return
            mono = _to_mono(block)
            room = self._max_frames - self._frames
            if room <= 0:
                continue
            mono = mono[:room]
            self._blocks.append(mono)
            self._frames += len(mono)
            self._first_block.set()
            pending.append(mono)
            pending_frames += len(mono)
            elapsed = self._frames / self._native_rate
            if pending_frames >= window and self.on_level is not None:
                chunk = np.concatenate(pending)
                self._emit(self.on_level, _level(chunk, elapsed))
            if pending_frames >= window:
                pending, pending_frames = [], 0
            remaining = self.max_seconds - elapsed
            whole = math.ceil(remaining - 1e-9)
            if 0 < whole <= self.countdown_from and whole != last_countdown:
                last_countdown = whole
                if self.on_countdown is not None:
                    self._emit(self.on_countdown, CountdownEvent(whole, elapsed))
            if self._frames >= self._max_frames:
                self._finalize(truncated=True)
                threading.Thread(target=self._finish, name="mic-cap-stop", daemon=True).start()
                if self._result is not None and self.on_limit is not None:
                    self._emit(self.on_limit, self._result)
                elif self._error is not None and self.on_error is not None:
                    self._emit(self.on_error, self._error)
                return

    def _emit(self, callback: Callable, event) -> None:
        try:
            callback(event)
        except Exception:  # a broken listener must not kill the recording
            import logging

            logging.getLogger(__name__).exception("capture callback failed")

    def _finalize(self, truncated: bool) -> None:
        native = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)
        if len(native) == 0:
            self._error = CaptureError(
                "No audio arrived from the microphone. Check that it is connected and selected in Settings."
            )
            return
        if (
            len(native) >= SILENT_STREAM_MIN_SECONDS * self._native_rate
            and not np.any(native)
            and is_mac(self._platform)
        ):
            self._error = PermissionDenied(
                "The microphone delivered only silence, which is what macOS does when an app is "
                "not allowed to use it. " + MIC_PERMISSION_HINT
            )
            return
        waveform = (
            native
            if self._native_rate == self.target_rate
            else resample(native, self._native_rate, self.target_rate)
        )
        self._result = Recording(
            waveform=waveform,
            sample_rate=self.target_rate,
            native_rate=self._native_rate,
            device_name=self._source_name,
            truncated=truncated,
        )

    def wait_for_audio(self, timeout: float = 2.0) -> bool:
        """True once the first block arrived (lets the GUI warn about a dead input quickly)."""
        return self._first_block.wait(timeout)


def _to_mono(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        return block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
    return block


def _level(chunk: np.ndarray, elapsed: float) -> LevelEvent:
    rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) if len(chunk) else 0.0
    peak = float(np.max(np.abs(chunk))) if len(chunk) else 0.0
    dbfs = 20.0 * math.log10(rms) if rms > 0 else float("-inf")
    return LevelEvent(rms=rms, peak=peak, dbfs=dbfs, elapsed_s=elapsed)
