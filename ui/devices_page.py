"""Settings ▸ Devices: the microphones and cameras by name, a level meter and a preview to
check the choice, kept in the `mic_device` / `camera_device` settings (None: the system's)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.backend import Backend, CaptureSession
from ui.push_to_talk import LevelMeter

SYSTEM_DEFAULT = "System default"
PREVIEW_SIZE = QSize(320, 180)


def device_combo(names: list[str], chosen: str | None, label: str) -> QComboBox:
    """A choice of devices by name; the first item (None) is the system's default."""
    combo = QComboBox()
    combo.setAccessibleName(label)
    combo.addItem(SYSTEM_DEFAULT, None)
    for name in names:
        combo.addItem(name, name)
    if chosen and chosen not in names:  # remembered, but not connected now
        combo.addItem(f"{chosen} (not connected)", chosen)
    combo.setCurrentIndex(max(0, combo.findData(chosen)))
    return combo


class DevicesPage(QWidget):
    """The Devices tab; `mic` and `camera` are the combos the settings dialog reads."""

    def __init__(self, backend: Backend, mic: str | None, camera: str | None,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.backend = backend
        self.mic_session: CaptureSession | None = None
        self.camera_session: CaptureSession | None = None
        self.frames_shown = 0
        layout = QVBoxLayout(self)
        form = QFormLayout()
        layout.addLayout(form)

        names, reason = backend.microphones()
        self.mic = device_combo(names, mic, "Microphone")
        self.mic.currentIndexChanged.connect(lambda _: self.stop_tests())
        mic_label = QLabel("Microphone:")
        mic_label.setBuddy(self.mic)
        form.addRow(mic_label, self.mic)
        row = QHBoxLayout()
        self.meter = LevelMeter()
        self.meter.setAccessibleName("Microphone level")
        row.addWidget(self.meter, 1)
        self.mic_test = QPushButton("Test")
        self.mic_test.setCheckable(True)
        self.mic_test.setAccessibleName("Test the microphone: show its level")
        self.mic_test.toggled.connect(self._toggle_mic)
        row.addWidget(self.mic_test)
        form.addRow("", row)
        self.mic_note = QLabel(reason)
        self.mic_note.setObjectName("Muted")
        self.mic_note.setWordWrap(True)
        self.mic_note.setVisible(bool(reason))
        form.addRow("", self.mic_note)

        self.camera = device_combo(backend.cameras(), camera, "Camera")
        self.camera.currentIndexChanged.connect(lambda _: self.stop_tests())
        camera_label = QLabel("Camera:")
        camera_label.setBuddy(self.camera)
        form.addRow(camera_label, self.camera)
        self.preview = QLabel("No preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setFixedSize(PREVIEW_SIZE)
        self.preview.setStyleSheet("background: #000; color: #bbb; border-radius: 6px;")
        self.preview.setAccessibleName("Camera preview")
        form.addRow("", self.preview)
        self.camera_test = QPushButton("Preview")
        self.camera_test.setCheckable(True)
        self.camera_test.setAccessibleName("Preview the camera")
        self.camera_test.toggled.connect(self._toggle_camera)
        form.addRow("", self.camera_test)
        note = QLabel("The chosen devices are used for push-to-talk and video clips; "
                      "the recorder says which one is recording.")  # fmt: skip
        note.setObjectName("Muted")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addStretch(1)

    def _toggle_mic(self, on: bool) -> None:
        self.mic_test.setText("Stop" if on else "Test")
        if not on:
            self._end_mic()
            return
        try:
            session = self.backend.microphone_session(self.mic.currentData())
        except Exception as exc:  # noqa: BLE001 - shown, the dialog stays usable
            self._mic_failed(getattr(exc, "reason", str(exc)))
            return
        self.mic_session = session
        session.level.connect(self.meter.set_level)
        session.failed.connect(self._mic_failed)
        session.start()
        if self.mic_session is session and session.device_name:
            self.mic_note.setText(f"Listening to {session.device_name}.")
            self.mic_note.setVisible(True)

    def _mic_failed(self, reason: str) -> None:
        self.mic_session = None
        self.mic_note.setText(reason)
        self.mic_note.setVisible(True)
        self.mic_test.setChecked(False)

    def _end_mic(self) -> None:
        session, self.mic_session = self.mic_session, None
        if session is not None:
            session.cancel()  # a test: nothing is kept
        self.meter.set_level(0.0)

    def _toggle_camera(self, on: bool) -> None:
        self.camera_test.setText("Stop Preview" if on else "Preview")
        if not on:
            self._end_camera()
            return
        try:
            session = self.backend.camera_session(self.camera.currentData())
        except Exception as exc:  # noqa: BLE001
            self._camera_failed(getattr(exc, "reason", str(exc)))
            return
        self.camera_session = session
        session.frame.connect(self._show_frame)
        session.failed.connect(self._camera_failed)
        session.start()

    def _show_frame(self, image: QImage) -> None:
        self.frames_shown += 1
        self.preview.setPixmap(QPixmap.fromImage(image).scaled(
            PREVIEW_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation))  # fmt: skip

    def _camera_failed(self, reason: str) -> None:
        self.camera_session = None
        self.preview.setText(reason)
        self.preview.setWordWrap(True)
        self.camera_test.setChecked(False)

    def _end_camera(self) -> None:
        session, self.camera_session = self.camera_session, None
        if session is not None:
            session.cancel()
        self.preview.setPixmap(QPixmap())
        self.preview.setText("No preview")

    def stop_tests(self) -> None:
        self.mic_test.setChecked(False)
        self.camera_test.setChecked(False)
        self._end_mic()
        self._end_camera()
