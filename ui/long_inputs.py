"""Long inputs in the window: document captions, a transcription's progress with Stop, the
record-mode bar, and saving a transcript as text, Markdown, SRT or JSON."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.backend import AttachmentView, Backend, CaptureSession, InputProgressView

TRANSCRIPT_FORMATS = (
    ("txt", "Text", "Text (*.txt)"),
    ("md", "Markdown", "Markdown (*.md)"),
    ("srt", "SRT Subtitles", "SubRip subtitles (*.srt)"),
    ("json", "JSON", "JSON (*.json)"),
)
STAGE_VERBS = {"transcribe": "Transcribing", "describe": "Describing", "map": "Reading",
               "reduce": "Combining"}  # fmt: skip


def format_tokens(tokens: int | None, estimated: bool = False) -> str:
    """`12,400 tokens` (`≈12,400 tokens` when counted without the model's tokenizer)."""
    if tokens is None:
        return ""
    return f"{'≈' if estimated else ''}{tokens:,} token{'' if tokens == 1 else 's'}"


def document_caption(attachment: AttachmentView) -> str:
    """What a document's chip and card say besides its name: `300 pages · 12,400 tokens`."""
    parts = [attachment.detail, format_tokens(attachment.tokens, attachment.tokens_estimated)]
    return " · ".join(p for p in parts if p)


def transcript_title(transcript: dict) -> str:
    """`Transcript of meeting.wav` (or `Description of demo.mp4`), `(stopped at 03:00)` if cut."""
    kind = "Description" if transcript.get("kind") == "description" else "Transcript"
    title = f"{kind} of {transcript.get('name') or 'the recording'}"
    if not transcript.get("complete"):
        segments = transcript.get("segments") or []
        end = segments[-1]["end_s"] if segments else 0.0
        title += f" (stopped at {int(end) // 60:02d}:{int(end) % 60:02d})"
    return title


class TranscriptProgress(QFrame):
    """A long input being prepared: `Transcribing meeting.wav: clip 37 of 120, 14 min left`,
    a bar, and Stop (what was transcribed is kept)."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TranscriptProgress")
        self.setAccessibleName("Transcription progress")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        column = QVBoxLayout()
        column.setSpacing(3)
        self.label = QLabel()
        self.label.setWordWrap(True)
        column.addWidget(self.label)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(6)
        column.addWidget(self.bar)
        layout.addLayout(column, 1)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setAccessibleName("Stop transcribing; keep what is done")
        self.cancel_button.setToolTip("Stop; what was transcribed so far is kept")
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout.addWidget(self.cancel_button)
        self.setVisible(False)

    def show_progress(self, view: InputProgressView) -> None:
        if view.done:
            self.setVisible(False)
            return
        if not view.message:
            return  # a note: it is shown on the answer
        verb = STAGE_VERBS.get(view.stage, "Preparing")
        self.label.setText(f"{verb} {view.name}: {view.message}")
        self.label.setAccessibleName(self.label.text())
        if view.fraction is None:
            self.bar.setRange(0, 0)  # busy
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(round(view.fraction * 1000)))
        self.setVisible(True)


class RecordBar(QFrame):
    """Record mode in the composer: elapsed time, input level, Stop (attach) and Cancel."""

    attachment_ready = Signal(object)  # AttachmentView
    failed = Signal(str)
    closed = Signal()

    def __init__(self, session: CaptureSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("RecordBar")
        self.setAccessibleName("Recording a meeting")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        icon = QLabel()
        icon.setPixmap(theme.icon("record").pixmap(16, 16))
        layout.addWidget(icon)
        self.elapsed_label = QLabel("Recording 0:00")
        layout.addWidget(self.elapsed_label)
        self.level = QProgressBar()
        self.level.setRange(0, 100)
        self.level.setTextVisible(False)
        self.level.setMaximumSize(120, 8)
        self.level.setAccessibleName("Input level")
        layout.addWidget(self.level)
        layout.addStretch(1)
        self.stop_button = QPushButton("Stop && Attach")
        self.stop_button.setObjectName("Primary")
        self.stop_button.clicked.connect(self.stop)
        layout.addWidget(self.stop_button)
        self.cancel_button = QPushButton("Discard")
        self.cancel_button.setToolTip("Stop without attaching (the file stays in the data folder)")
        self.cancel_button.clicked.connect(self.cancel)
        layout.addWidget(self.cancel_button)
        self._started = 0.0
        self._timer = QTimer(self, interval=500)
        self._timer.timeout.connect(self._tick)
        session.level.connect(lambda value: self.level.setValue(int(value * 100)))
        session.finished.connect(self._finished)
        session.failed.connect(self._failed)

    def start(self) -> None:
        self._started = time.monotonic()
        self._timer.start()
        self.session.start()
        device = getattr(self.session, "device_name", "")
        if device:  # known once started: the microphone being recorded, for the user
            self.setToolTip(f"Recording from {device}")
            self.setAccessibleDescription(f"Recording from {device}")

    def _tick(self) -> None:
        seconds = int(time.monotonic() - self._started)
        hours, rest = divmod(seconds, 3600)
        clock = (
            f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
            if hours
            else f"{rest // 60}:{rest % 60:02d}"
        )
        self.elapsed_label.setText(f"Recording {clock}")

    def stop(self) -> None:
        self._timer.stop()
        self.stop_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.elapsed_label.setText("Saving the recording…")
        self.session.stop()

    def cancel(self) -> None:
        self._timer.stop()
        self.session.cancel()

    def _finished(self, attachment: AttachmentView | None) -> None:
        if attachment is not None:
            self.attachment_ready.emit(attachment)
        self._close()

    def _failed(self, reason: str) -> None:
        self.failed.emit(reason)
        self._close()

    def _close(self) -> None:
        self._timer.stop()
        self.closed.emit()
        self.setParent(None)
        self.deleteLater()


def transcript_button(on_save) -> QToolButton:
    """ "Save transcript" with a menu of formats; `on_save(fmt)` is called with the one chosen."""
    button = QToolButton()
    button.setObjectName("IconButton")
    button.setIcon(theme.icon("download"))
    button.setAccessibleName("Save transcript")
    button.setToolTip("Save the transcript as text, Markdown, SRT subtitles or JSON")
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(button)
    for fmt, label, _ in TRANSCRIPT_FORMATS:
        action = menu.addAction(f"Save as {label}…")
        action.triggered.connect(lambda _checked=False, fmt=fmt: on_save(fmt))
    button.setMenu(menu)
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return button


def save_transcript(parent: QWidget, backend: Backend, message_id: str, fmt: str,
                    name: str = "transcript") -> Path | None:  # fmt: skip
    """Ask where, then write the transcript of `message_id` in `fmt`; the path, or None."""
    filters = {f: pattern for f, _, pattern in TRANSCRIPT_FORMATS}
    suggested = f"{Path(name).stem or 'transcript'}.{fmt}"
    path, _ = QFileDialog.getSaveFileName(
        parent, "Save Transcript", suggested, filters.get(fmt, "")
    )
    if not path:
        return None
    target = Path(path)
    target.write_text(backend.export_transcript(message_id, fmt), encoding="utf-8")
    return target
