"""The model dialog: what is loaded, its memory plan, and choosing or loading another model
(one listed on this Mac, the Hugging Face cache's included, or any folder)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.backend import Backend


class ModelDialog(QDialog):
    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Model & Memory")
        self.setAccessibleName("Model and memory plan")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        status = backend.model_status()
        row = QHBoxLayout()
        self.path = QLineEdit(status.path)
        self.path.setAccessibleName("Model folder")
        self.path.editingFinished.connect(self.refresh_plan)
        row.addWidget(self.path, 1)
        browse = QPushButton("Choose…")
        browse.setAccessibleName("Choose a model folder")
        browse.clicked.connect(self.browse)
        row.addWidget(browse)
        self.models = QComboBox()
        self.models.setAccessibleName("Models on this Mac")
        self.models.addItem("Models on this Mac…", "")
        for name, folder in backend.available_models():
            self.models.addItem(name, folder)
            self.models.setItemData(self.models.count() - 1, folder, Qt.ItemDataRole.ToolTipRole)
        self.models.activated.connect(self.choose_listed)
        self.models.setVisible(self.models.count() > 1)
        layout.addWidget(self.models)
        layout.addWidget(QLabel("Model folder:"))
        layout.addLayout(row)
        self.state = QLabel()
        self.state.setWordWrap(True)
        layout.addWidget(self.state)
        self.plan = QFormLayout()
        layout.addWidget(QLabel("<b>Memory plan</b>"))
        layout.addLayout(self.plan)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        layout.addWidget(self.verdict)
        buttons = QDialogButtonBox()
        self.load_button = buttons.addButton("Load", QDialogButtonBox.ButtonRole.AcceptRole)
        self.load_button.setAccessibleName("Load this model")
        self.unload_button = buttons.addButton("Unload", QDialogButtonBox.ButtonRole.ActionRole)
        self.unload_button.setAccessibleName("Unload the model and free its memory")
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.load_button.clicked.connect(self.load)
        self.unload_button.clicked.connect(self.unload)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh_plan()

    def choose_listed(self, index: int) -> None:
        folder = self.models.itemData(index)
        if folder:
            self.path.setText(folder)
            self.refresh_plan()

    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the Model Folder", self.path.text())
        if folder:
            self.path.setText(folder)
            self.refresh_plan()

    def refresh_plan(self) -> None:
        status = self.backend.model_status()
        texts = {
            "ready": f"Loaded: {status.name} ({status.precision})",
            "loading": "Loading…",
            "unloaded": f"Unloaded to free memory: {status.name} (loads again with your next message)",
        }
        self.state.setText(texts.get(status.state, "No model loaded."))
        self.unload_button.setEnabled(status.state in ("ready", "unloaded"))
        while self.plan.rowCount():
            self.plan.removeRow(0)
        rows, verdict = self.backend.memory_plan(self.path.text().strip() or None)
        for label, value in rows:
            self.plan.addRow(f"{label}:", QLabel(value))
        self.verdict.setText(verdict)

    def load(self) -> None:
        if self.path.text().strip():
            self.backend.load_model(self.path.text().strip())
        self.accept()

    def unload(self) -> None:
        self.backend.unload_model()
        self.refresh_plan()
