"""Stream sources the recorders read from: real devices (sounddevice, OpenCV) and test doubles.

An `AudioSource` pushes float32 blocks of shape (frames, channels) at its *native* rate to a
callback on its own thread; a `VideoSource` is pulled frame by frame (RGB uint8 plus a
timestamp in seconds). The recorders only see these two protocols, so tests feed them from
generated arrays or files and the real devices are used unchanged on a user's machine.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.capture.errors import (
    CAMERA_PERMISSION_HINT,
    MIC_PERMISSION_HINT,
    CaptureError,
    CaptureUnavailable,
    PermissionDenied,
    is_mac,
)

AudioBlockCallback = Callable[[np.ndarray], None]
EndCallback = Callable[[], None]


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class AudioDevice:
    """An audio input device as PortAudio lists it."""

    index: int
    name: str
    channels: int
    default_rate: int
    is_default: bool = False
    host_api: str = ""


@dataclass(frozen=True)
class CameraDevice:
    """A camera OpenCV can open, by index (OpenCV does not report names portably)."""

    index: int
    name: str
    width: int = 0
    height: int = 0


# --------------------------------------------------------------------------- audio


class AudioSource(Protocol):
    """A live stream of audio blocks at the source's native rate."""

    sample_rate: int
    channels: int
    name: str

    def start(self, on_block: AudioBlockCallback, on_end: EndCallback | None = None) -> None:
        """Begin delivering float32 blocks (frames, channels) to `on_block` from another thread."""
        ...

    def stop(self) -> None:
        """Stop delivering; when this returns no more blocks will arrive."""
        ...


def import_sounddevice():
    """Import sounddevice, turning a missing PortAudio library into `CaptureUnavailable`."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError("PortAudio library not found")
        raise CaptureUnavailable(
            f"Microphone input is unavailable: {exc}. Install PortAudio "
            "(macOS: it ships inside the app; Linux: apt-get install libportaudio2)."
        ) from exc
    except ImportError as exc:
        raise CaptureUnavailable(f"Microphone input is unavailable: {exc}.") from exc
    return sounddevice


def list_audio_inputs() -> list[AudioDevice]:
    """The input devices PortAudio sees (raises `CaptureUnavailable` without PortAudio)."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except Exception as exc:  # PortAudioError and friends
        raise CaptureUnavailable(f"Cannot list audio devices: {exc}") from exc
    result = []
    for index, info in enumerate(devices):
        if int(info.get("max_input_channels", 0)) < 1:
            continue
        hostapi = info.get("hostapi", 0)
        result.append(
            AudioDevice(
                index=index,
                name=str(info["name"]),
                channels=int(info["max_input_channels"]),
                default_rate=int(round(float(info["default_samplerate"]))),
                is_default=index == default_in,
                host_api=str(hostapis[hostapi]["name"]) if hostapi < len(hostapis) else "",
            )
        )
    return result


def portaudio_text(exc: BaseException) -> str:
    """PortAudio's message for people: without its error codes ("-1", "[PaErrorCode -9996]")."""
    text = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = re.sub(r"\s*\[PaErrorCode -?\d+\]", "", text)
    text = re.sub(r"(?<=device)\s+-?\d+\b", "", text)  # "Error querying device -1"
    return text.strip().rstrip(".")


def mic_error_message(exc: BaseException, device: str, platform: str | None = None) -> str:
    """A sentence for a PortAudio failure; on a Mac it says how to grant microphone access."""
    text = f"Could not open the microphone ({device}): {portaudio_text(exc)}."
    if is_mac(platform):
        text += " macOS may be blocking microphone access. " + MIC_PERMISSION_HINT
    return text


class SoundDeviceSource:
    """The real microphone: a sounddevice `InputStream` at the device's native sample rate."""

    def __init__(
        self,
        device: int | str | None = None,
        *,
        channels: int = 1,
        block_duration_s: float = 0.02,
        platform: str | None = None,
    ) -> None:
        self._sd = import_sounddevice()
        self._platform = platform
        try:
            info = self._sd.query_devices(device, kind="input")
        except Exception as exc:  # no default input (PortAudio's device -1), or no such name
            if device is None:
                raise CaptureUnavailable(
                    "No microphone found. Connect one, or choose one in Settings ▸ Devices."
                ) from exc
            raise CaptureUnavailable(
                f"The microphone “{device}” is not connected. Choose another in Settings ▸ Devices."
            ) from exc
        if int(info.get("max_input_channels", 0)) < 1:
            raise CaptureUnavailable(f"{info.get('name', device)} has no input channels.")
        self.device = device
        self.name = str(info["name"])
        self.sample_rate = int(round(float(info["default_samplerate"])))
        self.channels = min(channels, int(info["max_input_channels"]))
        self.block_frames = max(1, int(self.sample_rate * block_duration_s))
        self._stream = None

    def start(self, on_block: AudioBlockCallback, on_end: EndCallback | None = None) -> None:
        def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread
            on_block(np.array(indata, dtype=np.float32, copy=True))

        try:
            self._stream = self._sd.InputStream(
                device=self.device,
                samplerate=self.sample_rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.block_frames,
                callback=callback,
                finished_callback=on_end,
            )
            self._stream.start()
        except Exception as exc:  # sd.PortAudioError, ValueError for bad settings
            self._stream = None
            message = mic_error_message(exc, self.name, self._platform)
            raise (PermissionDenied if is_mac(self._platform) else CaptureUnavailable)(
                message
            ) from exc

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()


class ArrayAudioSource:
    """Plays a waveform as if it came from a microphone (tests, demos).

    `speed=None` delivers blocks as fast as the consumer takes them; `speed=1.0` paces them in
    real time. After the last block `on_end` is called and `wait_done()` returns.
    """

    def __init__(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        *,
        block_frames: int = 1024,
        speed: float | None = None,
        name: str = "test signal",
    ) -> None:
        data = np.asarray(waveform, dtype=np.float32)
        self.waveform = data[:, None] if data.ndim == 1 else data
        self.sample_rate = int(sample_rate)
        self.channels = int(self.waveform.shape[1])
        self.block_frames = int(block_frames)
        self.speed = speed
        self.name = name
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_block: AudioBlockCallback, on_end: EndCallback | None = None) -> None:
        self._stop.clear()
        self._done.clear()

        def play() -> None:
            t0 = time.monotonic()
            for begin in range(0, len(self.waveform), self.block_frames):
                if self._stop.is_set():
                    break
                if self.speed:
                    due = t0 + begin / self.sample_rate / self.speed
                    self._stop.wait(max(0.0, due - time.monotonic()))
                    if self._stop.is_set():
                        break
                on_block(self.waveform[begin : begin + self.block_frames].copy())
            self._done.set()
            if on_end is not None:
                on_end()

        self._thread = threading.Thread(target=play, name="array-audio-source", daemon=True)
        self._thread.start()

    def wait_done(self, timeout: float = 10.0) -> bool:
        """Block until every block was delivered (or `stop()` was called)."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)


class FileAudioSource(ArrayAudioSource):
    """An `ArrayAudioSource` read from an audio file (WAV, FLAC, ...) at the file's own rate."""

    def __init__(self, path: str | Path, **kwargs) -> None:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        kwargs.setdefault("name", Path(path).name)
        super().__init__(data, rate, **kwargs)


# --------------------------------------------------------------------------- video


@dataclass(frozen=True)
class VideoFrame:
    """One camera frame: RGB uint8 (height, width, 3) and its time in seconds since open."""

    image: np.ndarray
    timestamp: float


class VideoSource(Protocol):
    """A camera-like stream pulled one frame at a time."""

    name: str
    fps: float

    def open(self) -> None:
        """Acquire the device; raises `CaptureUnavailable` / `PermissionDenied`."""
        ...

    def read(self) -> VideoFrame | None:
        """Block for the next frame; None when the stream has ended."""
        ...

    def close(self) -> None:
        """Release the device (safe to call twice)."""
        ...


def camera_error_message(index: int, platform: str | None = None) -> str:
    """A sentence for a camera that would not open; on a Mac it says how to grant access."""
    text = (
        f"Could not open camera {index}: it is missing, busy in another app, or access was denied."
    )
    if is_mac(platform):
        text += " " + CAMERA_PERMISSION_HINT
    return text


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class OpenCVCameraSource:
    """The real webcam through `cv2.VideoCapture(index)` (AVFoundation on a Mac)."""

    def __init__(
        self,
        index: int = 0,
        *,
        width: int | None = 1280,
        height: int | None = 720,
        fps: float = 30.0,
        platform: str | None = None,
    ) -> None:
        self.index = int(index)
        self.name = f"Camera {index}"
        self.fps = float(fps)
        self._size = (width, height)
        self._platform = platform
        self._capture = None
        self._t0 = 0.0
        self._failures = 0

    def open(self) -> None:
        import cv2

        backend = cv2.CAP_AVFOUNDATION if is_mac(self._platform) else cv2.CAP_ANY
        capture = cv2.VideoCapture(self.index, backend)
        if not capture.isOpened():
            capture.release()
            error = PermissionDenied if is_mac(self._platform) else CaptureUnavailable
            raise error(camera_error_message(self.index, self._platform))
        width, height = self._size
        if width and height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        reported = capture.get(cv2.CAP_PROP_FPS)
        if reported and reported > 0:
            self.fps = float(reported)
        self._capture = capture
        self._t0 = time.monotonic()
        self._failures = 0

    def read(self) -> VideoFrame | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self._failures += 1
            if self._failures >= 30:  # about a second of nothing: the device went away
                raise CaptureError(f"{self.name} stopped delivering frames.")
            time.sleep(1.0 / max(self.fps, 1.0))
            return self.read()
        self._failures = 0
        return VideoFrame(_bgr_to_rgb(frame), time.monotonic() - self._t0)

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class FileVideoSource:
    """Plays a video file as if it were a camera; timestamps come from the file's frame rate.

    `speed=None` reads as fast as possible (tests); `speed=1.0` paces frames in real time.
    """

    def __init__(self, path: str | Path, *, speed: float | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.fps = 0.0
        self.speed = speed
        self._capture = None
        self._index = 0
        self._t0 = 0.0

    def open(self) -> None:
        import cv2

        if not self.path.is_file():
            raise CaptureUnavailable(f"Video file not found: {self.path}")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise CaptureUnavailable(f"Cannot decode video file {self.path}")
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
        self._capture = capture
        self._index = 0
        self._t0 = time.monotonic()

    def read(self) -> VideoFrame | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        timestamp = self._index / self.fps
        self._index += 1
        if self.speed:
            delay = self._t0 + timestamp / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return VideoFrame(_bgr_to_rgb(frame), timestamp)

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class ArrayVideoSource:
    """Plays a list of RGB frames at a given frame rate (tests that need exact pixels)."""

    def __init__(self, frames: list[np.ndarray], fps: float, *, name: str = "test frames") -> None:
        self.frames = frames
        self.fps = float(fps)
        self.name = name
        self._index = 0
        self._opened = False

    def open(self) -> None:
        self._opened = True
        self._index = 0

    def read(self) -> VideoFrame | None:
        if not self._opened or self._index >= len(self.frames):
            return None
        frame = VideoFrame(np.asarray(self.frames[self._index]), self._index / self.fps)
        self._index += 1
        return frame

    def close(self) -> None:
        self._opened = False


def list_cameras(max_index: int = 4) -> list[CameraDevice]:
    """Probe camera indices 0..max_index-1 and return those that open (may take a moment)."""
    import cv2

    found = []
    for index in range(max_index):
        capture = cv2.VideoCapture(index)
        try:
            if capture.isOpened():
                width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
                height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
                found.append(CameraDevice(index, f"Camera {index}", width, height))
        finally:
            capture.release()
    return found
