"""The webcam recorder: live preview, record/stop with a countdown, retake, attach."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ui.attachment_views import AttachmentCard, format_duration
from ui.backend import AttachmentView, Backend, CaptureSession


class WebcamDialog(QDialog):
    """Records one short clip; `attachment` holds it after Attach is pressed."""

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Record a Video Clip")
        self.setAccessibleName("Webcam recorder")
        self.setMinimumSize(520, 470)
        self.session: CaptureSession | None = None
        self.clip: AttachmentView | None = None
        self.attachment: AttachmentView | None = None
        self.recording = False
        self.frames_shown = 0

        layout = QVBoxLayout(self)
        self.preview = QLabel("Starting the camera…")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(480, 320)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.preview.setStyleSheet("background: #000; color: #bbb; border-radius: 8px;")
        self.preview.setAccessibleName("Camera preview")
        layout.addWidget(self.preview, 1)
        self.status = QLabel("")
        self.status.setObjectName("Muted")
        self.status.setAccessibleName("Recorder status")
        layout.addWidget(self.status)
        self.result_slot = QVBoxLayout()
        layout.addLayout(self.result_slot)
        self.result_card: AttachmentCard | None = None

        buttons = QHBoxLayout()
        self.record_button = QPushButton("Record")
        self.record_button.setObjectName("Primary")
        self.record_button.setAccessibleName("Start recording")
        self.record_button.clicked.connect(self.toggle_recording)
        buttons.addWidget(self.record_button)
        self.retake_button = QPushButton("Retake")
        self.retake_button.setAccessibleName("Retake the clip")
        self.retake_button.clicked.connect(self.retake)
        self.retake_button.setEnabled(False)
        buttons.addWidget(self.retake_button)
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.setAccessibleName("Cancel and close the recorder")
        cancel.clicked.connect(self.reject)
        buttons.addWidget(cancel)
        self.attach_button = QPushButton("Attach")
        self.attach_button.setAccessibleName("Attach the clip to the message")
        self.attach_button.setEnabled(False)
        self.attach_button.setVisible(False)  # offered only once there is a clip
        self.attach_button.clicked.connect(self.attach)
        buttons.addWidget(self.attach_button)
        layout.addLayout(buttons)
        self.start_preview()

    def start_preview(self) -> None:
        try:
            self.session = self.backend.camera_session()
        except Exception as exc:  # noqa: BLE001 - no camera: explain, keep the dialog usable
            self._show_failure(getattr(exc, "reason", str(exc)))
            return
        self.session.frame.connect(self._on_frame)
        self.session.remaining.connect(self._on_remaining)
        self.session.finished.connect(self._on_finished)
        self.session.failed.connect(self._show_failure)
        self.session.start()
        if self.session is None:  # failed at once
            return
        device = f" with {self.session.device_name}" if self.session.device_name else ""
        self.status.setText(
            f"Up to {int(self.session.limit_s)} s{device}. Press Record when ready."
        )

    def toggle_recording(self) -> None:
        if self.session is None:
            return
        if self.recording:
            self.session.stop()
            self.record_button.setEnabled(False)
            self.status.setText("Saving the clip…")
            return
        self.recording = True
        self.record_button.setText("Stop")
        self.record_button.setAccessibleName("Stop recording")
        self.session.record()

    def retake(self) -> None:
        self.clip = None
        if self.result_card is not None:
            self.result_card.setParent(None)
            self.result_card.deleteLater()
            self.result_card = None
        self.attach_button.setEnabled(False)
        self.attach_button.setVisible(False)
        self.retake_button.setEnabled(False)
        self.record_button.setEnabled(True)
        self.record_button.setText("Record")
        self.record_button.setAccessibleName("Start recording")
        self.recording = False
        self.start_preview()

    def attach(self) -> None:
        if self.clip is None:  # never without a clip (the button is off then too)
            return
        self.attachment = self.clip
        self.accept()

    def _on_frame(self, image: QImage) -> None:
        self.frames_shown += 1
        size = self.preview.size() - QSize(4, 4)
        self.preview.setPixmap(
            QPixmap.fromImage(image).scaled(
                size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
            )
        )

    def _on_remaining(self, seconds: float) -> None:
        if self.recording:
            self.status.setText(f"● Recording — {format_duration(seconds)} left")

    def _on_finished(self, clip: AttachmentView | None) -> None:
        self.recording = False
        self.session = None
        self.record_button.setText("Record")
        self.record_button.setEnabled(False)
        if clip is None or not clip.duration_s:  # nothing was recorded: nothing to attach
            self.status.setText("Nothing was recorded. Press Retake to try again.")
            self.retake_button.setEnabled(True)
            self.attach_button.setEnabled(False)
            self.attach_button.setVisible(False)
            return
        self.clip = clip
        self.result_card = AttachmentCard(clip)
        self.result_slot.addWidget(self.result_card)
        self.status.setText(f"Clip ready: {format_duration(clip.duration_s)}. Attach it or retake.")
        self.attach_button.setEnabled(True)
        self.attach_button.setVisible(True)
        self.attach_button.setObjectName("Primary")
        self.attach_button.setStyle(self.attach_button.style())
        self.retake_button.setEnabled(True)
        self.attach_button.setFocus()

    def _show_failure(self, reason: str) -> None:
        self.recording = False
        self.session = None
        self.preview.setText(reason)
        self.preview.setWordWrap(True)
        self.status.setText("The camera is not available.")
        self.record_button.setEnabled(False)

    def done(self, result: int) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.finished.disconnect(self._on_finished)
            session.cancel()
        super().done(result)
