"""`CaptureSession`s over the app's recordings (`app.capture.recording`): their callbacks,
made on capture threads, arrive as `CaptureSession` signals on the UI thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage

from app.attachments import Attachment
from ui.backend import AttachmentView, CaptureSession


def qimage_from_file(path: Path | None) -> QImage | None:
    if path is None or not Path(path).exists():
        return None
    image = QImage(str(path))
    return None if image.isNull() else image


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def attachment_view(attachment: Attachment) -> AttachmentView:
    """An app `Attachment` as the widgets show it."""
    strip = qimage_from_file(attachment.frame_strip) if attachment.kind == "video" else None
    return AttachmentView(
        kind=attachment.kind,
        name=attachment.filename,
        path=attachment.path,
        size_bytes=attachment.size,
        duration_s=attachment.duration_s,
        width=attachment.width or 0,
        height=attachment.height or 0,
        thumbnail=qimage_from_file(attachment.thumbnail),
        waveform=attachment.waveform,
        frames=[strip] if strip is not None else [],
        detail=attachment.size_label,
        tokens=attachment.tokens,
        tokens_estimated=bool(attachment.meta.get("tokens_estimated")),
        source=attachment,
    )


class RecordingSession(CaptureSession):
    """A `CaptureSession` over a recording made by `make(**callbacks)`."""

    _relay = Signal(str, object)  # (signal name, value) from any thread, queued

    def __init__(self, make: Callable[..., Any]) -> None:
        super().__init__()
        self._relay.connect(self._emit, Qt.ConnectionType.QueuedConnection)
        relay = self._relay.emit
        self.recording = make(
            on_level=lambda level: relay("level", level),
            on_remaining=lambda seconds: relay("remaining", seconds),
            on_frame=lambda rgb: relay("frame", rgb),
            on_finished=lambda attachment: relay("finished", attachment),
            on_failed=lambda reason: relay("failed", reason),
        )
        self.limit_s = self.recording.limit_s

    def _emit(self, name: str, value: Any) -> None:
        if name == "frame":
            value = qimage_from_rgb(value)
        elif name == "finished" and value is not None:
            value = attachment_view(value)
        getattr(self, name).emit(value)

    @property
    def device_name(self) -> str:  # known once started (the microphone's own name)
        return self.recording.device_name

    def start(self) -> None:
        self.recording.start()

    def record(self) -> None:
        self.recording.record()

    def stop(self) -> None:
        self.recording.stop()

    def cancel(self) -> None:
        self.recording.cancel()
