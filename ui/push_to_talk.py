"""Push-to-talk: hold the mic button (or the hotkey) to record; a level meter and countdown show."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from ui import theme
from ui.backend import AttachmentView, Backend, CaptureSession
from ui.message_widget import icon_button

HOTKEY = Qt.Key.Key_F5  # the dictation key on Mac keyboards; held anywhere in the window
TAP_SECONDS = 0.35  # a shorter press latches recording on; press again to stop


class LevelMeter(QWidget):
    """A horizontal input-level bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = 0.0
        self.setAccessibleName("Microphone level")
        self.setMinimumSize(120, 10)

    def sizeHint(self) -> QSize:
        return QSize(160, 10)

    def set_level(self, level: float) -> None:
        self.level = max(0.0, min(1.0, level))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.current().color("border"))
        painter.drawRoundedRect(QRectF(self.rect()), 4, 4)
        painter.setBrush(theme.current().color("accent"))
        painter.drawRoundedRect(QRectF(0, 0, self.width() * self.level, self.height()), 4, 4)


class RecordingBar(QFrame):
    """Shown in the composer while the microphone records."""

    cancel_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Chip")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        dot = QLabel()
        dot.setPixmap(theme.icon("record", "#e5484d").pixmap(12, 12))
        layout.addWidget(dot)
        self.title = QLabel("Recording")
        layout.addWidget(self.title)
        self.meter = LevelMeter()
        layout.addWidget(self.meter, 1)
        self.countdown = QLabel()
        self.countdown.setAccessibleName("Time left")
        layout.addWidget(self.countdown)
        stop = icon_button("stop", "Stop recording and attach")
        stop.clicked.connect(self.stop_requested)
        layout.addWidget(stop)
        cancel = icon_button("close", "Cancel recording")
        cancel.clicked.connect(self.cancel_requested)
        layout.addWidget(cancel)
        self.setAccessibleName("Recording from the microphone")

    def set_device(self, name: str) -> None:
        self.title.setText(f"Recording from {name}")
        self.title.setToolTip(name)
        self.setAccessibleName(f"Recording from {name}")

    def set_remaining(self, seconds: float) -> None:
        self.countdown.setText(f"{max(0, int(seconds + 0.999))} s left")


class PushToTalk(QObject):
    """Runs one microphone session at a time and turns it into an attachment or a dictation."""

    attachment_ready = Signal(object)  # AttachmentView
    failed = Signal(str)
    recording_changed = Signal(bool)

    def __init__(self, backend: Backend, bar_parent_layout, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.session: CaptureSession | None = None
        self.bar: RecordingBar | None = None
        self._slot = bar_parent_layout
        self._pressed_at = 0.0
        self._latched = False
        self.dictation = False

    @property
    def recording(self) -> bool:
        return self.session is not None

    def press(self) -> None:
        if self.session is not None:
            if self._latched:  # second tap stops a latched recording
                self.stop()
            return
        self._pressed_at = time.monotonic()
        self._latched = False
        try:
            session = self.backend.microphone_session()
        except Exception as exc:  # noqa: BLE001 - unavailable microphone: say why
            self.failed.emit(getattr(exc, "reason", str(exc)))
            return
        self.session = session
        session.level.connect(self._on_level)
        session.remaining.connect(self._on_remaining)
        session.finished.connect(self._on_finished)
        session.failed.connect(self._on_failed)
        self.bar = RecordingBar()
        self.bar.stop_requested.connect(self.stop)
        self.bar.cancel_requested.connect(self.cancel)
        self.bar.set_remaining(session.limit_s)
        self._slot.addWidget(self.bar)
        self.recording_changed.emit(True)
        session.start()
        if self.bar is not None and session.device_name:  # known once started
            self.bar.set_device(session.device_name)

    def release(self) -> None:
        if self.session is None:
            return
        if time.monotonic() - self._pressed_at < TAP_SECONDS:
            self._latched = True  # a tap: keep recording until the next tap
            return
        if not self._latched:
            self.stop()

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()

    def cancel(self) -> None:
        if self.session is not None:
            self.session.cancel()

    def _on_level(self, level: float) -> None:
        if self.bar is not None:
            self.bar.meter.set_level(level)

    def _on_remaining(self, seconds: float) -> None:
        if self.bar is not None:
            self.bar.set_remaining(seconds)

    def _end(self) -> None:
        if self.bar is not None:
            self._slot.removeWidget(self.bar)
            self.bar.deleteLater()
            self.bar = None
        self.session = None
        self.recording_changed.emit(False)

    def _on_finished(self, attachment: AttachmentView | None) -> None:
        self._end()
        if attachment is None:
            return
        if self.dictation:
            self.backend.transcribe(attachment)
        else:
            self.attachment_ready.emit(attachment)

    def _on_failed(self, reason: str) -> None:
        self._end()
        self.failed.emit(reason)


class HoldToTalkFilter(QObject):
    """Window-wide hold-to-talk: press and hold HOTKEY, release to stop."""

    def __init__(self, push_to_talk: PushToTalk, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.push_to_talk = push_to_talk

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == HOTKEY:
            if event.isAutoRepeat():
                return True
            if event.type() == QEvent.Type.KeyPress:
                self.push_to_talk.press()
            else:
                self.push_to_talk._pressed_at = 0.0  # a held key never latches
                self.push_to_talk.release()
            return True
        return False
