"""Assistants (presets) and each chat's own settings: the chat header's picker, the Chat
Settings dialog (system prompt, sampling, thinking, tools; "Save as Assistant…") and the
Assistants dialog that adds, changes and removes the user's own."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.options import LIMITS
from ui.backend import Backend, Preset
from ui.settings_dialog import OptionalNumberEdit

NUMBERS = (("temperature", "Temperature", True), ("top_p", "Top-p", True),
           ("top_k", "Top-k", False), ("max_tokens", "Maximum answer tokens", False))  # fmt: skip
THINKING = (("As in Settings", None), ("On", True), ("Off", False))
DEFAULT_ASSISTANT = "Default"


class PresetEditor(QWidget):
    """System prompt, sampling, thinking and tools; values left to Settings are None."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("System prompt")
        self.prompt.setPlaceholderText("Empty: the system prompt from Settings")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setMinimumHeight(110)
        form.addRow(self._label("System prompt:", self.prompt), self.prompt)
        self.numbers: dict[str, OptionalNumberEdit] = {}
        for key, label, is_float in NUMBERS:
            limit = LIMITS[key]
            editor = OptionalNumberEdit(None, is_float, label, default_text="As in Settings",
                                        minimum=limit.low, maximum=limit.high)  # fmt: skip
            self.numbers[key] = editor
            form.addRow(self._label(f"{label}:", editor.spin), editor)
        self.thinking = QComboBox()
        for text, value in THINKING:
            self.thinking.addItem(text, value)
        self.thinking.setAccessibleName("Thinking")
        form.addRow(self._label("Thinking:", self.thinking), self.thinking)
        self.tools = QCheckBox("Offer tools (MCP servers, files)")
        self.tools.setAccessibleName("Offer tools")
        self.tools.setChecked(True)
        form.addRow("", self.tools)

    @staticmethod
    def _label(text: str, buddy: QWidget) -> QLabel:
        label = QLabel(text)
        label.setBuddy(buddy)
        return label

    def set_values(self, system_prompt: str | None, options: dict[str, Any]) -> None:
        self.prompt.setPlainText(system_prompt or "")
        for key, editor in self.numbers.items():
            value = options.get(key)
            editor._chosen = value
            editor.default.setChecked(value is None)
            editor._default_toggled(value is None)
        self.thinking.setCurrentIndex(max(0, self.thinking.findData(options.get("thinking"))))
        self.tools.setChecked(options.get("tools", True) is not False)

    def values(self) -> tuple[str | None, dict[str, Any]]:
        """(system prompt or None, options with None for "as in Settings")."""
        options: dict[str, Any] = {key: editor.value() for key, editor in self.numbers.items()}
        options["thinking"] = self.thinking.currentData()
        options["tools"] = None if self.tools.isChecked() else False
        return self.prompt.toPlainText().strip() or None, options


def apply_preset(backend: Backend, conversation_id: str, preset: Preset | None) -> None:
    """Make a chat follow an assistant from now on (None: the Settings' defaults)."""
    options: dict[str, Any] = {key: None for key, *_ in NUMBERS}
    options.update(thinking=None, tools=None, preset=None)
    system_prompt = None
    if preset is not None:
        options.update(preset.options)
        options["preset"] = preset.name
        system_prompt = preset.system_prompt or None
    backend.set_chat_settings(conversation_id, system_prompt=system_prompt, **options)


class ChatHeader(QWidget):
    """Above the chat: which assistant it follows, and its own settings."""

    settings_requested = Signal()
    changed = Signal()

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.conversation_id = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(24, 8, 24, 0)
        label = QLabel("Assistant:")
        label.setObjectName("Muted")
        layout.addWidget(label)
        self.combo = QComboBox()
        self.combo.setAccessibleName("Assistant for this chat")
        self.combo.setToolTip("The assistant this chat follows: its prompt, sampling and thinking")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        label.setBuddy(self.combo)
        self.combo.activated.connect(self._chosen)
        layout.addWidget(self.combo)
        self.settings_button = QPushButton("Chat Settings…")
        self.settings_button.setAccessibleName("This chat's settings: system prompt and sampling")
        self.settings_button.clicked.connect(self.settings_requested)
        layout.addWidget(self.settings_button)
        layout.addStretch(1)

    def show_chat(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.combo.clear()
        self.combo.addItem(DEFAULT_ASSISTANT, "")
        for preset in self.backend.presets():
            self.combo.addItem(preset.name, preset.name)
            self.combo.setItemData(self.combo.count() - 1, preset.description,
                                   Qt.ItemDataRole.ToolTipRole)  # fmt: skip
        current = self.backend.chat_settings(conversation_id).options.get("preset") or ""
        index = self.combo.findData(current)
        if index < 0:  # started from an assistant that was removed since
            self.combo.addItem(f"{current} (removed)", current)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)

    def _chosen(self, index: int) -> None:
        name = self.combo.itemData(index)
        preset = next((p for p in self.backend.presets() if p.name == name), None)
        apply_preset(self.backend, self.conversation_id, preset)
        self.changed.emit()


class ChatSettingsDialog(QDialog):
    """One chat's system prompt and options; OK applies them to the chat's next answers."""

    def __init__(self, backend: Backend, conversation_id: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.backend = backend
        self.conversation_id = conversation_id
        self.setWindowTitle("Chat Settings")
        self.setAccessibleName("Chat settings")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        note = QLabel("These apply to this chat only, from its next answer on.")
        note.setObjectName("Muted")
        layout.addWidget(note)
        self.editor = PresetEditor()
        current = backend.chat_settings(conversation_id)
        self.preset = current.options.get("preset")
        self.editor.set_values(current.system_prompt, current.options)
        layout.addWidget(self.editor)
        self.error = QLabel()
        self.error.setObjectName("ChipRejected")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_as = QPushButton("Save as Assistant…")
        self.save_as.setAccessibleName("Save these settings as a new assistant")
        self.save_as.clicked.connect(self.save_as_assistant)
        buttons.addButton(self.save_as, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def accept(self) -> None:
        system_prompt, options = self.editor.values()
        try:
            self.backend.set_chat_settings(
                self.conversation_id, system_prompt=system_prompt, **options
            )
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        super().accept()

    def save_as_assistant(self, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self, "Save as Assistant", "Name:")
            if not ok:
                return
        system_prompt, options = self.editor.values()
        preset = Preset(
            name, system_prompt or "", {k: v for k, v in options.items() if v is not None}
        )
        try:
            self.backend.save_preset(preset)
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.preset = preset.name
        self.error.setText("")
        self.backend.set_chat_settings(self.conversation_id, preset=preset.name)


class AssistantsDialog(QDialog):
    """The assistants: built-in ones to read, the user's own to add, change or remove."""

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Assistants")
        self.setAccessibleName("Assistants")
        self.setMinimumSize(720, 480)
        layout = QHBoxLayout(self)
        column = QVBoxLayout()
        self.list = QListWidget()
        self.list.setAccessibleName("Assistants")
        self.list.currentItemChanged.connect(lambda item, _: self._show(item))
        column.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.new_button = QPushButton("New")
        self.new_button.setAccessibleName("New assistant")
        self.new_button.clicked.connect(self.new)
        row.addWidget(self.new_button)
        self.delete_button = QPushButton("Remove")
        self.delete_button.setAccessibleName("Remove this assistant")
        self.delete_button.clicked.connect(self.delete)
        row.addWidget(self.delete_button)
        column.addLayout(row)
        layout.addLayout(column, 1)
        right = QVBoxLayout()
        self.name = QLineEdit()
        self.name.setAccessibleName("Assistant name")
        self.name.setPlaceholderText("Name")
        right.addWidget(self.name)
        self.description = QLabel()
        self.description.setObjectName("Muted")
        self.description.setWordWrap(True)
        right.addWidget(self.description)
        self.editor = PresetEditor()
        right.addWidget(self.editor, 1)
        self.error = QLabel()
        self.error.setObjectName("ChipRejected")
        self.error.setWordWrap(True)
        right.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.save_button = QPushButton("Save")
        self.save_button.setAccessibleName("Save the assistant")
        self.save_button.clicked.connect(self.save)
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        right.addWidget(buttons)
        layout.addLayout(right, 2)
        self.editing: str | None = None
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        self.list.clear()
        for preset in self.backend.presets():
            item = QListWidgetItem(preset.name + (" (built in)" if preset.builtin else ""))
            item.setData(Qt.ItemDataRole.UserRole, preset)
            self.list.addItem(item)
            if preset.name == select:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)

    def _show(self, item: QListWidgetItem | None) -> None:
        preset: Preset | None = item.data(Qt.ItemDataRole.UserRole) if item else None
        self.editing = preset.name if preset and not preset.builtin else None
        self.name.setText(preset.name if preset else "")
        self.description.setText(preset.description if preset else "")
        self.editor.set_values(
            preset.system_prompt if preset else "", preset.options if preset else {}
        )
        builtin = bool(preset and preset.builtin)
        for widget in (self.name, self.editor, self.save_button, self.delete_button):
            widget.setEnabled(not builtin)
        self.error.setText("Built-in assistants cannot be changed; use New to make your own."
                           if builtin else "")  # fmt: skip

    def new(self) -> None:
        self.list.clearSelection()
        self.list.setCurrentItem(None)
        self._show(None)
        self.name.setFocus()

    def save(self) -> None:
        system_prompt, options = self.editor.values()
        preset = Preset(self.name.text(), system_prompt or "",
                        {k: v for k, v in options.items() if v is not None})  # fmt: skip
        try:
            self.backend.save_preset(preset, replacing=self.editing)
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.refresh(select=" ".join(preset.name.split()))

    def delete(self) -> None:
        if self.editing:
            self.backend.delete_preset(self.editing)
            self.refresh()
