"""File ▸ Export Chat…: Markdown (to read or share) or JSON (to import again), with or
without the chat's pictures and recordings."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)


class ExportDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Chat")
        self.setAccessibleName("Export chat")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Export the messages shown in this chat as:"))
        self.markdown = QRadioButton("Markdown — to read or share")
        self.markdown.setAccessibleName("Markdown, to read or share")
        self.markdown.setChecked(True)
        layout.addWidget(self.markdown)
        self.json = QRadioButton("JSON — to import into Gemma Desk again")
        self.json.setAccessibleName("JSON, to import again")
        layout.addWidget(self.json)
        self.media = QCheckBox("Include pictures and recordings in the file")
        self.media.setAccessibleName("Include pictures and recordings")
        self.media.setEnabled(False)
        self.json.toggled.connect(self.media.setEnabled)
        layout.addWidget(self.media)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def format(self) -> str:
        return "json" if self.json.isChecked() else "markdown"

    def with_media(self) -> bool:
        return self.json.isChecked() and self.media.isChecked()
