"""The first-run screen: download Gemma 4 12B (size, disk, memory plan, progress) or pick a folder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.attachment_views import format_bytes
from ui.backend import Backend


class FirstRunScreen(QWidget):
    """Shown when no model is available; `model_chosen` carries a folder to load."""

    model_chosen = Signal(str)

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setObjectName("FirstRun")
        self.setAccessibleName("Welcome: set up a model")
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(14)
        logo = QLabel()
        logo.setPixmap(theme.app_icon().pixmap(72, 72))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(logo)
        title = QLabel("Welcome to Gemma Desk")
        title.setObjectName("FirstRunTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(title)
        intro = QLabel(
            "Gemma Desk runs Google's Gemma 4 entirely on this computer. Nothing you type, "
            "show or say leaves it. To begin, download the model once, or choose a folder "
            "that already holds it."
        )
        intro.setWordWrap(True)
        intro.setAlignment(Qt.AlignmentFlag.AlignCenter)
        intro.setObjectName("Muted")
        column.addWidget(intro)

        card = QFrame()
        card.setObjectName("FirstRunCard")
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(18, 16, 18, 16)
        self.offer_title = QLabel()
        self.offer_title.setStyleSheet("font-size: 16px; font-weight: 600;")
        card_layout.addWidget(self.offer_title)
        self.facts = QFormLayout()
        self.facts.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        card_layout.addLayout(self.facts)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        card_layout.addWidget(self.verdict)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Download progress")
        self.progress.setVisible(False)
        card_layout.addWidget(self.progress)
        self.progress_text = QLabel()
        self.progress_text.setObjectName("Muted")
        self.progress_text.setVisible(False)
        card_layout.addWidget(self.progress_text)
        buttons = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("Primary")
        self.download_button.setAccessibleName("Download the model")
        self.download_button.clicked.connect(self.start_download)
        buttons.addWidget(self.download_button)
        self.cancel_button = QPushButton("Cancel Download")
        self.cancel_button.setAccessibleName("Cancel the download")
        self.cancel_button.clicked.connect(self.cancel_download)
        self.cancel_button.setVisible(False)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        self.folder_button = QPushButton("Choose a Local Folder…")
        self.folder_button.setAccessibleName("Choose a folder that holds a model")
        self.folder_button.clicked.connect(self.choose_folder)
        buttons.addWidget(self.folder_button)
        card_layout.addLayout(buttons)
        column.addWidget(card)
        self.error = QLabel()
        self.error.setObjectName("ChipRejected")
        self.error.setWordWrap(True)
        column.addWidget(self.error)

        row = QHBoxLayout()
        row.addStretch(1)
        holder = QWidget()
        holder.setLayout(column)
        holder.setMaximumWidth(560)
        holder.setMinimumWidth(420)
        row.addWidget(holder, 10)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

        backend.download_progress.connect(self.on_progress)
        backend.download_finished.connect(self.on_finished)
        self.refresh()

    def refresh(self) -> None:
        while self.facts.rowCount():
            self.facts.removeRow(0)
        offer = self.backend.download_offer()
        if offer is None:
            self.offer_title.setText("No model download is available")
            self.download_button.setEnabled(False)
            return
        self.offer_title.setText(offer.name)
        self.facts.addRow("Download size:", QLabel(format_bytes(offer.size_bytes)))
        enough = offer.free_disk_bytes >= offer.size_bytes
        disk = QLabel(
            f"{format_bytes(offer.free_disk_bytes)} free" + ("" if enough else " — not enough")
        )
        self.facts.addRow("Disk space:", disk)
        where = QLabel(offer.destination)
        where.setWordWrap(True)
        where.setObjectName("Muted")
        self.facts.addRow("Saved to:", where)
        for label, value in offer.memory_plan:
            self.facts.addRow(f"{label}:", QLabel(value))
        if offer.assistant_repo:
            assistant = QLabel(
                f"its assistant ({offer.assistant_repo}) comes with it, for faster answers; "
                "turn “Faster answers” off in Settings to skip it"
            )
            assistant.setWordWrap(True)
            assistant.setObjectName("Muted")
            self.facts.addRow("Faster answers:", assistant)
        self.verdict.setText(offer.plan_verdict)
        self.download_button.setEnabled(enough)
        self.download_button.setText(f"Download ({format_bytes(offer.size_bytes)})")

    def start_download(self) -> None:
        self.error.clear()
        self.download_button.setEnabled(False)
        self.cancel_button.setVisible(True)
        self.progress.setVisible(True)
        self.progress_text.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress_text.setText("Starting…")
        self.backend.start_download()

    def cancel_download(self) -> None:
        self.backend.cancel_download()

    def on_progress(self, done: int, total: int, what: str) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))
            self.progress_text.setText(f"{format_bytes(done)} of {format_bytes(total)} — {what}")
        else:
            self.progress_text.setText(what)

    def on_finished(self, folder: str, error: str) -> None:
        self.cancel_button.setVisible(False)
        self.progress.setVisible(False)
        self.progress_text.setVisible(False)
        self.download_button.setEnabled(True)
        if folder:
            self.model_chosen.emit(folder)
        elif error:
            self.error.setText(error)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the Model Folder")
        if folder:
            self.model_chosen.emit(folder)
