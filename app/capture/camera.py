"""Webcam clips: a live preview, then a recording that keeps one frame per second plus audio.

`CameraRecorder` pulls frames from any `VideoSource` on its own thread. While open it
delivers preview frames at a modest rate (default 10 fps, downscaled) for a live view.
`start_recording()` starts keeping frames at `frames_per_second` (1 fps for the model) and,
when a `MicrophoneRecorder` is given, records the microphone over the same span; the clip
stops at `max_seconds` (60 s by default, the caller passes the model's limit) or when the
user calls `stop_recording()`. `Clip.save()` writes an MP4 (the kept frames at their own
rate, with the audio as an AAC track) and a 16 kHz WAV for the attachment layer.
Callbacks run on the capture thread; keep them short (the GUI wraps them in Qt signals).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from app.capture.errors import Availability, CaptureError, CaptureUnavailable
from app.capture.microphone import CountdownEvent, MicrophoneRecorder, Recording
from app.capture.sources import (
    CameraDevice,
    OpenCVCameraSource,
    VideoFrame,
    VideoSource,
    list_cameras,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 60.0
DEFAULT_FRAMES_PER_SECOND = 1.0
DEFAULT_PREVIEW_FPS = 10.0


@dataclass(frozen=True)
class PreviewFrame:
    """A downscaled RGB frame for the live view."""

    image: np.ndarray
    timestamp: float


@dataclass(frozen=True)
class ClipFiles:
    """What `Clip.save` wrote: the MP4 (video + audio track) and the WAV (None without audio)."""

    video: Path
    audio: Path | None


@dataclass
class Clip:
    """A finished recording: the kept frames (RGB uint8), their times and the audio."""

    frames: list[np.ndarray]
    frame_times: list[float]  # seconds since the recording started
    duration_s: float
    frames_per_second: float
    audio: Recording | None
    truncated: bool  # the length cap ended it
    source_name: str = ""
    audio_error: str | None = None  # why there is no audio, when there is none
    files: ClipFiles | None = field(default=None, repr=False)

    def save(self, folder: str | Path, stem: str = "clip") -> ClipFiles:
        """Write `stem.mp4` (kept frames + AAC audio) and `stem.wav`; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not self.frames:
            raise CaptureError("The clip has no frames to save.")
        audio_path = self.audio.write_wav(folder / f"{stem}.wav") if self.audio else None
        video_path = folder / f"{stem}.mp4"
        write_mp4(video_path, self.frames, self.frames_per_second, self.audio)
        self.files = ClipFiles(video_path, audio_path)
        return self.files


def availability(max_index: int = 4) -> Availability:
    """Whether a camera can be opened here, with the reason when none can."""
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        return Availability(False, f"Camera capture is unavailable: {exc}.")
    if not list_cameras(max_index):
        return Availability(False, "No camera found, or access to it was denied.")
    return Availability(True)


def list_devices(max_index: int = 4) -> list[CameraDevice]:
    """Cameras for the device picker (probes indices; takes a moment, call off the UI thread)."""
    return list_cameras(max_index)


class CameraRecorder:
    """Live preview plus clip recording from one `VideoSource`.

    source_factory: builds the source on `open()` (default: OpenCV camera `device`).
    microphone: a recorder dedicated to clips; its cap is raised to `max_seconds`.
    on_preview: `PreviewFrame`s at most `preview_fps` per second.
    on_countdown: `CountdownEvent`s for the last `countdown_from` seconds of a recording.
    on_finished: the recording ended by itself (cap reached or the stream ended); gets the
        `Clip` (a later `stop_recording()` returns the same one).
    on_error: the stream failed; gets a `CaptureError`; preview and recording stop.
    """

    def __init__(
        self,
        source_factory: Callable[[], VideoSource] | None = None,
        *,
        device: int = 0,
        microphone: MicrophoneRecorder | None = None,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        frames_per_second: float = DEFAULT_FRAMES_PER_SECOND,
        preview_fps: float = DEFAULT_PREVIEW_FPS,
        preview_max_width: int = 640,
        countdown_from: int = 10,
        on_preview: Callable[[PreviewFrame], None] | None = None,
        on_countdown: Callable[[CountdownEvent], None] | None = None,
        on_finished: Callable[[Clip], None] | None = None,
        on_error: Callable[[CaptureError], None] | None = None,
        platform: str | None = None,
    ) -> None:
        self.device = device
        self.microphone = microphone
        self.max_seconds = float(max_seconds)
        self.frames_per_second = float(frames_per_second)
        self.preview_fps = float(preview_fps)
        self.preview_max_width = int(preview_max_width)
        self.countdown_from = int(countdown_from)
        self.on_preview = on_preview
        self.on_countdown = on_countdown
        self.on_finished = on_finished
        self.on_error = on_error
        self._source_factory = source_factory or (
            lambda: OpenCVCameraSource(self.device, platform=platform)
        )
        self._lock = threading.Lock()
        self._source: VideoSource | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._rec: _ClipBuilder | None = None
        self._clip: Clip | None = None
        self._error: CaptureError | None = None

    # ---------------------------------------------------------------- public API

    @property
    def is_open(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def is_recording(self) -> bool:
        return self._rec is not None

    def set_device(self, device: int) -> None:
        """Use another camera from the next `open()` (default factory only)."""
        self.device = device

    def open(self) -> None:
        """Open the camera and start the preview (raises `CaptureUnavailable`/`PermissionDenied`)."""
        with self._lock:
            if self.is_open:
                return
            source = self._source_factory()
            source.open()
            self._source = source
            self._stop.clear()
            self._ended.clear()
            self._error = None
            self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
            self._thread.start()

    def start_recording(self) -> None:
        """Begin a clip (opens the camera first if needed); the microphone starts too.

        The clip starts at the first frame after this call; raises like `open()` (and then
        nothing keeps running).
        """
        audio_error = None
        if self.microphone is not None:
            self.microphone.max_seconds = max(self.microphone.max_seconds, self.max_seconds)
            self.microphone.countdown_from = 0
            try:
                self.microphone.start()
            except CaptureUnavailable as exc:
                audio_error = exc.reason
                log.warning("clip without audio: %s", exc.reason)
        with self._lock:
            self._clip = None
            self._rec = _ClipBuilder(
                max_seconds=self.max_seconds,
                frames_per_second=self.frames_per_second,
                countdown_from=self.countdown_from,
                audio_error=audio_error,
                with_audio=self.microphone is not None and audio_error is None,
            )
        try:
            self.open()
        except BaseException:
            self.cancel_recording()
            raise

    def stop_recording(self) -> Clip:
        """End the clip and return it (the preview keeps running until `close()`)."""
        with self._lock:
            rec, self._rec = self._rec, None
            if rec is None:
                if self._clip is not None:
                    return self._clip
                if self._error is not None:
                    raise self._error
                raise CaptureError("Not recording.")
        clip = self._build(rec, truncated=False)
        self._clip = clip
        return clip

    def cancel_recording(self) -> None:
        """Drop the clip being recorded."""
        with self._lock:
            rec, self._rec = self._rec, None
        if rec is not None and rec.with_audio and self.microphone is not None:
            self.microphone.cancel()

    def close(self) -> None:
        """Stop the preview (and any recording, which is dropped) and release the camera."""
        self.cancel_recording()
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def wait_ended(self, timeout: float = 10.0) -> bool:
        """Block until the stream ended or failed (file sources in tests)."""
        return self._ended.wait(timeout)

    # ---------------------------------------------------------------- internals

    def _run(self) -> None:
        last_preview: float | None = None
        preview_interval = 1.0 / self.preview_fps if self.preview_fps > 0 else math.inf
        try:
            while not self._stop.is_set():
                frame = self._source.read() if self._source is not None else None
                if frame is None:
                    self._auto_finish(truncated=False)
                    return
                if self.on_preview is not None and (
                    last_preview is None
                    or frame.timestamp - last_preview >= preview_interval - 1e-6
                ):
                    last_preview = frame.timestamp
                    self._emit(
                        self.on_preview, PreviewFrame(self._downscale(frame.image), frame.timestamp)
                    )
                self._record(frame)
        except CaptureError as exc:
            self._fail(exc)
        except Exception as exc:  # an OpenCV exception: report it, never crash the app
            self._fail(CaptureError(f"The camera failed: {exc}"))
        finally:
            self._ended.set()

    def _record(self, frame: VideoFrame) -> None:
        with self._lock:
            rec = self._rec
        if rec is None:
            return
        status = rec.add(frame)
        if status.countdown is not None and self.on_countdown is not None:
            self._emit(self.on_countdown, status.countdown)
        if status.full:
            self._auto_finish(truncated=True)

    def _auto_finish(self, truncated: bool) -> None:
        with self._lock:
            rec, self._rec = self._rec, None
        if rec is None:
            return
        clip = self._build(rec, truncated=truncated)
        self._clip = clip
        if self.on_finished is not None:
            self._emit(self.on_finished, clip)

    def _build(self, rec: _ClipBuilder, truncated: bool) -> Clip:
        audio, audio_error = None, rec.audio_error
        if rec.with_audio and self.microphone is not None:
            try:
                audio = self.microphone.stop()
            except CaptureError as exc:
                audio_error = str(exc)
        duration = rec.duration_s
        if audio is not None and duration > 0:
            keep = int(round(duration * audio.sample_rate))
            audio = Recording(
                audio.waveform[:keep],
                audio.sample_rate,
                audio.native_rate,
                audio.device_name,
                audio.truncated,
            )
        return Clip(
            frames=rec.frames,
            frame_times=rec.times,
            duration_s=duration,
            frames_per_second=self.frames_per_second,
            audio=audio,
            truncated=truncated,
            source_name=getattr(self._source, "name", ""),
            audio_error=audio_error,
        )

    def _fail(self, error: CaptureError) -> None:
        self._error = error
        with self._lock:
            rec, self._rec = self._rec, None
        if rec is not None and rec.with_audio and self.microphone is not None:
            self.microphone.cancel()
        if self.on_error is not None:
            self._emit(self.on_error, error)

    def _downscale(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if width <= self.preview_max_width:
            return image
        import cv2

        scale = self.preview_max_width / width
        size = (self.preview_max_width, max(1, int(round(height * scale))))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    @staticmethod
    def _emit(callback: Callable, event) -> None:
        try:
            callback(event)
        except Exception:
            log.exception("camera callback failed")


@dataclass
class _Status:
    full: bool = False
    countdown: CountdownEvent | None = None


class _ClipBuilder:
    """Keeps one frame per 1/fps seconds of stream time, up to the cap."""

    def __init__(
        self,
        max_seconds: float,
        frames_per_second: float,
        countdown_from: int,
        audio_error: str | None,
        with_audio: bool,
    ) -> None:
        self.max_seconds = max_seconds
        self.countdown_from = countdown_from
        self.fps = frames_per_second
        self.audio_error = audio_error
        self.with_audio = with_audio
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.t0: float | None = None
        self.last_t = 0.0
        self.frame_interval = 0.0
        self.next_slot = 0
        self.last_countdown: int | None = None

    @property
    def duration_s(self) -> float:
        if self.t0 is None:
            return 0.0
        return min(self.max_seconds, self.last_t + self.frame_interval)

    def add(self, frame: VideoFrame) -> _Status:
        if self.t0 is None:
            self.t0 = frame.timestamp
        t = frame.timestamp - self.t0
        status = _Status()
        if t >= self.max_seconds - 1e-9:
            status.full = True
            return status
        if t > self.last_t:
            self.frame_interval = t - self.last_t
        self.last_t = t
        if t >= self.next_slot / self.fps - 1e-9:
            self.frames.append(frame.image)
            self.times.append(t)
            self.next_slot = math.floor(t * self.fps + 1e-9) + 1
        whole = math.ceil(self.max_seconds - t - 1e-9)
        if 0 < whole <= self.countdown_from and whole != self.last_countdown:
            self.last_countdown = whole
            status.countdown = CountdownEvent(whole, t)
        return status


def write_mp4(path: Path, frames: list[np.ndarray], fps: float, audio: Recording | None) -> None:
    """Encode RGB frames at `fps` (H.264, or MPEG-4 Part 2 where x264 is missing) plus AAC audio."""
    import av

    height, width = frames[0].shape[:2]
    even_w, even_h = width - width % 2, height - height % 2
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = even_w, even_h, "yuv420p"
        audio_stream = None
        if audio is not None and len(audio.waveform):
            audio_stream = container.add_stream("aac", rate=audio.sample_rate)
            audio_stream.layout = "mono"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[:even_h, :even_w]), format="rgb24"
            )
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio_stream is not None:
            samples = np.clip(audio.waveform, -1.0, 1.0).astype(np.float32)
            step = 1024
            for begin in range(0, len(samples), step):
                chunk = samples[begin : begin + step][None, :]
                aframe = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="mono"
                )
                aframe.sample_rate = audio.sample_rate
                aframe.pts = begin
                aframe.time_base = Fraction(1, audio.sample_rate)
                for packet in audio_stream.encode(aframe):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
