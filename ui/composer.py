"""The composer: multi-line input, attachment chips, drag and drop, paste, mic, camera, send/stop."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.attachment_views import AttachmentChip
from ui.backend import (
    DEFAULT_VISION_BUDGET,
    VISION_BUDGETS,
    AttachmentRejected,
    AttachmentView,
    Backend,
)
from ui.message_widget import icon_button

MEDIA_FILTER = (
    "Images, audio, video and documents (*.png *.jpg *.jpeg *.gif *.webp *.heic *.heif *.bmp "
    "*.tif *.tiff *.wav *.mp3 *.m4a *.aac *.flac *.ogg *.opus *.aiff *.mp4 *.mov *.m4v *.webm "
    "*.mkv *.avi *.pdf *.docx *.txt *.md *.markdown *.rst *.csv *.tsv *.html *.htm *.json *.py "
    "*.js *.ts *.java *.c *.h *.cpp *.go *.rs *.rb *.swift *.kt *.sh *.sql *.yaml *.yml "
    "*.toml);;All files (*)"
)


def file_paths(mime: QMimeData) -> list[Path]:
    """Local files named by a drag or paste (Finder gives file URLs)."""
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class _IngestSignals(QObject):
    done = Signal(object, object)  # AttachmentView | None, AttachmentRejected | None


class _IngestJob(QRunnable):
    """Validate and store one file off the UI thread (hashing and thumbnails take time)."""

    def __init__(self, backend: Backend, path: Path | None, image: QImage | None) -> None:
        super().__init__()
        self.backend, self.path, self.image = backend, path, image
        self.signals = _IngestSignals()

    def run(self) -> None:
        try:
            if self.image is not None:
                result = self.backend.ingest_image(self.image)
            else:
                result = self.backend.ingest_path(self.path)
            self.signals.done.emit(result, None)
        except AttachmentRejected as exc:
            self.signals.done.emit(None, exc)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a crash
            name = self.path.name if self.path else "Pasted image"
            self.signals.done.emit(None, AttachmentRejected(name, f"could not be read ({exc})."))


class ComposerInput(QPlainTextEdit):
    """Return sends, Shift+Return inserts a new line; pasted images and files become attachments."""

    submit = Signal()
    files_pasted = Signal(list)
    image_pasted = Signal(QImage)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submit.emit()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802
        return (
            source.hasImage() or bool(file_paths(source)) or super().canInsertFromMimeData(source)
        )

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802
        paths = file_paths(source)
        if paths:
            self.files_pasted.emit(paths)
        elif source.hasImage():
            image = QImage(source.imageData())
            if not image.isNull():
                self.image_pasted.emit(image)
        else:
            super().insertFromMimeData(source)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - let the composer take file drops
        if file_paths(event.mimeData()):
            event.ignore()
            return
        super().dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        if file_paths(event.mimeData()):
            event.ignore()
            return
        super().dropEvent(event)


class Composer(QFrame):
    """Where the user writes; owns pending attachments until they are sent."""

    send_requested = Signal(str, list, int)  # text, [AttachmentView], vision budget
    stop_requested = Signal()
    camera_requested = Signal()
    mic_pressed = Signal()
    mic_released = Signal()
    thinking_toggled = Signal(bool)

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setObjectName("Composer")
        self.setAcceptDrops(True)
        self.setAccessibleName("Message composer")
        self.generating = False
        self.pending_ingests = 0
        self._jobs: set[_IngestJob] = set()
        self.chips: list[AttachmentChip] = []
        self.rejections: list[str] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)
        self.chip_row = QHBoxLayout()
        self.chip_row.setSpacing(6)
        self.chip_row.addStretch(1)
        layout.addLayout(self.chip_row)
        self.problems = QWidget()
        problems = QHBoxLayout(self.problems)
        problems.setContentsMargins(0, 0, 0, 0)
        self.rejection_label = QLabel()
        self.rejection_label.setObjectName("ChipRejected")
        self.rejection_label.setWordWrap(True)
        self.rejection_label.setAccessibleName("Attachment problems")
        problems.addWidget(self.rejection_label, 1)
        self.dismiss_button = icon_button("close", "Dismiss the attachment problems")
        self.dismiss_button.clicked.connect(self.clear_problems)
        problems.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        self.problems.setVisible(False)
        layout.addWidget(self.problems)
        self.recording_slot = QVBoxLayout()
        layout.addLayout(self.recording_slot)

        self.input = ComposerInput()
        self.input.setObjectName("ComposerInput")
        self.input.setPlaceholderText(
            "Message Gemma  (Return to send, Shift+Return for a new line)"
        )
        self.input.setAccessibleName("Message")
        self.input.setAccessibleDescription("Return sends, Shift+Return adds a new line")
        self.input.setTabChangesFocus(True)
        self.input.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.input.setFixedHeight(64)
        self.input.submit.connect(self.submit)
        self.input.files_pasted.connect(self.add_paths)
        self.input.image_pasted.connect(self.add_image)
        layout.addWidget(self.input)

        row = QHBoxLayout()
        row.setSpacing(4)
        self.attach_button = icon_button(
            "attach", "Attach files", "Attach images, audio, video or documents (⌘O)"
        )
        self.attach_button.clicked.connect(self.choose_files)
        row.addWidget(self.attach_button)
        self.mic_button = icon_button("mic", "Record audio", "Hold to talk (or hold F5)")
        self.mic_button.pressed.connect(self.mic_pressed)
        self.mic_button.released.connect(self.mic_released)
        row.addWidget(self.mic_button)
        self.camera_button = icon_button("camera", "Record a video clip")
        self.camera_button.clicked.connect(self.camera_requested)
        row.addWidget(self.camera_button)
        budget_label = QLabel("Image detail")
        budget_label.setObjectName("Muted")
        row.addWidget(budget_label)
        self.budget = QComboBox()
        for value in VISION_BUDGETS:
            self.budget.addItem(f"{value} tokens", value)
        self.budget.setCurrentIndex(VISION_BUDGETS.index(DEFAULT_VISION_BUDGET))
        self.budget.setAccessibleName("Image detail: vision tokens per image")
        self.budget.setToolTip("How many tokens each image of this message may use")
        budget_label.setBuddy(self.budget)
        row.addWidget(self.budget)
        self.thinking_button = QToolButton()
        self.thinking_button.setObjectName("ThinkingButton")
        self.thinking_button.setCheckable(True)
        self.thinking_button.setText("Think")
        self.thinking_button.setIcon(theme.icon("thinking"))
        self.thinking_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.thinking_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.thinking_button.toggled.connect(self._thinking_changed)
        self.thinking_button.clicked.connect(lambda on: self.thinking_toggled.emit(on))
        row.addWidget(self.thinking_button)
        self._thinking_changed(False)
        row.addStretch(1)
        self.send_button = icon_button("send", "Send message", "Send (Return)")
        self.send_button.clicked.connect(self._send_or_stop)
        row.addWidget(self.send_button)
        layout.addLayout(row)

    # --- thinking ------------------------------------------------------------------------
    def set_thinking(self, on: bool) -> None:
        """Show this chat's thinking choice (without telling anyone it changed)."""
        self.thinking_button.setChecked(on)

    def _thinking_changed(self, on: bool) -> None:
        state = "on" if on else "off"
        self.thinking_button.setAccessibleName(f"Thinking {state}")
        self.thinking_button.setToolTip(
            f"Thinking is {state} for this chat: Gemma {'thinks before' if on else 'answers without'}"
            " thinking first (⇧⌘T)"
        )

    # --- attachments -----------------------------------------------------------------
    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Attach files", "", MEDIA_FILTER)
        self.add_paths([Path(p) for p in paths])

    def add_paths(self, paths: list[Path]) -> None:
        if paths:
            self.clear_problems()  # a new drop: only its own problems are listed
        for path in paths:
            self._start(_IngestJob(self.backend, Path(path), None))

    def add_image(self, image: QImage) -> None:
        self.clear_problems()
        self._start(_IngestJob(self.backend, None, image.copy()))

    def _start(self, job: _IngestJob) -> None:
        self.pending_ingests += 1
        self._jobs.add(job)
        job.setAutoDelete(False)
        job.signals.done.connect(lambda result, error, job=job: self._ingested(job, result, error))
        QThreadPool.globalInstance().start(job)

    def _ingested(self, job: _IngestJob, result: AttachmentView | None, error) -> None:
        self._jobs.discard(job)
        self.pending_ingests -= 1
        if result is not None:
            self.add_attachment(result)
        else:
            self.reject(error.name, error.reason)

    def add_attachment(self, attachment: AttachmentView) -> None:
        chip = AttachmentChip(attachment)
        chip.remove_requested.connect(self.remove_chip)
        self.chip_row.insertWidget(self.chip_row.count() - 1, chip)
        self.chips.append(chip)

    def remove_chip(self, chip: AttachmentChip) -> None:
        self.chips.remove(chip)
        self.chip_row.removeWidget(chip)
        chip.deleteLater()
        self.input.setFocus()

    def reject(self, name: str, reason: str) -> None:
        """List a problem under the composer (with those of the same drop; × clears them)."""
        line = reason if name in reason else f"{name}: {reason}"
        if line not in self.rejections:
            self.rejections.append(line)
        shown = self.rejections[-4:]
        more = len(self.rejections) - len(shown)
        self.rejection_label.setText(
            "Not attached — " + "\n".join(shown) + (f"\n…and {more} more" if more else "")
        )
        self.problems.setVisible(True)

    def clear_problems(self) -> None:
        self.rejections.clear()
        self.rejection_label.clear()
        self.problems.setVisible(False)

    def attachments(self) -> list[AttachmentView]:
        return [chip.attachment for chip in self.chips]

    # --- drag and drop -------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if file_paths(event.mimeData()) or event.mimeData().hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = file_paths(event.mimeData())
        if paths:
            self.add_paths(paths)
            event.acceptProposedAction()
        elif event.mimeData().hasImage():
            self.add_image(QImage(event.mimeData().imageData()))
            event.acceptProposedAction()

    # --- sending -------------------------------------------------------------------------
    def set_generating(self, generating: bool) -> None:
        self.generating = generating
        self.send_button.setIcon(theme.icon("stop" if generating else "send"))
        self.send_button.setAccessibleName("Stop generating" if generating else "Send message")
        self.send_button.setToolTip("Stop (⌘.)" if generating else "Send (Return)")

    def _send_or_stop(self) -> None:
        if self.generating:
            self.stop_requested.emit()
        else:
            self.submit()

    def submit(self) -> None:
        text = self.input.toPlainText().strip()
        attachments = self.attachments()
        if self.generating or (not text and not attachments) or self.pending_ingests:
            return
        self.send_requested.emit(text, attachments, int(self.budget.currentData()))
        self.input.clear()
        for chip in list(self.chips):
            self.remove_chip(chip)
        self.clear_problems()

    def set_text(self, text: str) -> None:
        self.input.setPlainText(text)
        cursor = self.input.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.input.setTextCursor(cursor)
        self.input.setFocus()
