"""A recording in progress, for any front end: push-to-talk or a webcam clip, ingested at the end.

`MicRecording` and `CameraRecording` wrap the recorders (`app.capture.microphone`,
`app.capture.camera`) behind callbacks, called from capture threads: `on_level(0..1)`,
`on_remaining(seconds left)`, `on_frame(rgb preview)`, `on_finished(Attachment, or None
when cancelled)` and `on_failed(reason for the user)`. Stopping and ingesting the
clip into the media store run on a worker thread; exactly one of `on_finished` and
`on_failed` is called, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from app.attachments import Attachment, AttachmentIngestor
from app.capture.errors import CaptureError, CaptureUnavailable
from app.errors import MEDIA_KINDS, kind_of


class Recording:
    """Shared plumbing of the two recordings (see the module docstring)."""

    def __init__(
        self,
        ingestor: AttachmentIngestor,
        limit_s: float,
        *,
        on_finished: Callable[[Attachment | None], None],
        on_failed: Callable[[str], None],
        on_level: Callable[[float], None] = lambda level: None,
        on_remaining: Callable[[float], None] = lambda seconds: None,
        on_frame: Callable[[Any], None] = lambda rgb: None,
    ) -> None:
        self.ingestor = ingestor
        self.limit_s = limit_s
        self.on_finished, self.on_failed = on_finished, on_failed
        self.on_level, self.on_remaining, self.on_frame = on_level, on_remaining, on_frame
        self.device_name = ""  # the device recording, for the user ("" when unknown)
        self._done = False
        self._lock = threading.Lock()

    def _end(self, callback: Callable[[Any], None], value: Any) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        callback(value)

    def finished(self, attachment: Attachment | None) -> None:
        self._end(self.on_finished, attachment)

    def failed(self, reason: str) -> None:
        self._end(self.on_failed, reason)

    def finish_with(self, produce: Callable[[], Any]) -> None:
        """Stop (`produce` returns the capture) and ingest it, on a worker thread."""

        def work() -> None:
            try:
                capture = produce()
                self.finished(self.ingestor.from_capture(capture)[0] if capture else None)
            except Exception as exc:  # noqa: BLE001 - a recording problem never crashes the app
                if isinstance(exc, CaptureError) or kind_of(exc) in MEDIA_KINDS:
                    self.failed(str(getattr(exc, "reason", exc)))
                else:
                    self.failed(f"The recording could not be saved: {exc}")

        threading.Thread(target=work, name="capture-finish", daemon=True).start()


class MicRecording(Recording):
    """Push-to-talk: `start`, then `stop` (or `cancel`); the length limit stops it too."""

    def __init__(self, ingestor: AttachmentIngestor, limit_s: float, source: Any,
                 device: str | None = None, **callbacks: Any):  # fmt: skip
        super().__init__(ingestor, limit_s, **callbacks)
        from app.capture.microphone import MicrophoneRecorder

        self.recorder = MicrophoneRecorder(
            source,
            device=device,
            max_seconds=limit_s,
            countdown_from=int(limit_s),
            on_level=self._level,
            on_limit=lambda recording: self.finish_with(lambda: recording),
            on_error=lambda exc: self.failed(str(exc)),
        )

    def _level(self, event: Any) -> None:
        self.on_level(meter(event.dbfs))
        self.on_remaining(max(0.0, self.limit_s - event.elapsed_s))

    def start(self) -> None:
        try:
            self.recorder.start()
        except CaptureUnavailable as exc:
            self.failed(exc.reason)
            return
        self.device_name = self.recorder.device_name

    def stop(self) -> None:
        self.finish_with(self.recorder.stop)

    def cancel(self) -> None:
        self.recorder.cancel()
        self.finished(None)


class CameraRecording(Recording):
    """A webcam clip: `start` opens the preview, `record` starts the clip, `stop` ends it."""

    def __init__(
        self,
        ingestor: AttachmentIngestor,
        limit_s: float,
        source: Any,
        *,
        with_audio: bool = True,
        microphone_source: Any = None,
        device: int = 0,
        mic_device: str | None = None,
        **callbacks: Any,
    ):
        super().__init__(ingestor, limit_s, **callbacks)
        from app.capture.camera import CameraRecorder
        from app.capture.microphone import MicrophoneRecorder

        microphone = None
        if with_audio:  # the microphone records alongside (`microphone_source` None: the chosen)
            microphone = MicrophoneRecorder(
                microphone_source, device=mic_device, max_seconds=limit_s
            )
        self._recording_since: float | None = None
        self.recorder = CameraRecorder(
            source,
            device=device,
            microphone=microphone,
            max_seconds=limit_s,
            on_preview=self._preview,
            on_finished=lambda clip: self.finish_with(lambda: clip),
            on_error=lambda exc: self.failed(str(exc)),
        )

    def _preview(self, frame: Any) -> None:
        self.on_frame(frame.image)
        if self._recording_since is not None:
            elapsed = time.monotonic() - self._recording_since
            self.on_remaining(max(0.0, self.limit_s - elapsed))

    def start(self) -> None:
        try:
            self.recorder.open()
        except CaptureUnavailable as exc:
            self.failed(exc.reason)

    def record(self) -> None:
        self.recorder.start_recording()
        self._recording_since = time.monotonic()

    def stop(self) -> None:
        self._recording_since = None
        recorder = self.recorder

        def produce() -> Any:
            clip = recorder.stop_recording()
            recorder.close()
            return clip

        self.finish_with(produce)

    def cancel(self) -> None:
        self._recording_since = None
        threading.Thread(target=self.recorder.close, daemon=True).start()
        self.finished(None)


def meter(dbfs: float) -> float:
    """-60 dBFS (silence) .. 0 dBFS (full scale) -> 0..1 for a level meter."""
    return 0.0 if dbfs == float("-inf") else max(0.0, min(1.0, (dbfs + 60.0) / 60.0))
