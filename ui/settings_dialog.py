"""The settings dialog: one editor per app setting, grouped by section, built from the backend.

Kinds beyond plain values: "secret" (an API key, shown as dots), "json" (a list such as the
MCP servers, edited as JSON text and checked before it is applied; Claude Desktop's servers
can be imported into it), and the choice between the local model and a remote server,
which enables the remote fields only when chosen.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.backend import Backend, SettingField
from ui.devices_page import DevicesPage

CHOICE_TEXT = {
    "backend": {"local": "This computer (local model)", "remote": "A remote server (OpenAI API)"}
}
REMOTE_KEYS = ("remote_url", "remote_model", "remote_api_key")
DEVICE_KEYS = ("mic_device", "camera_device")


class JsonEdit(QPlainTextEdit):
    """A JSON value (e.g. the list of MCP servers) as editable text."""

    def __init__(self, value: Any, label: str) -> None:
        super().__init__()
        self.label = label
        data = list(value) if isinstance(value, tuple) else value
        self.setPlainText(json.dumps(data, indent=2, ensure_ascii=False))
        self.setTabChangesFocus(True)
        self.setMinimumHeight(120)

    def value(self) -> Any:
        """The parsed text (a list comes back as a tuple); ValueError names the JSON mistake."""
        text = self.toPlainText().strip() or "[]"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{self.label}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        return tuple(data) if isinstance(data, list) else data


class PathEdit(QWidget):
    def __init__(self, value: str, directory: bool, label: str) -> None:
        super().__init__()
        self.directory = directory
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.line = QLineEdit(value or "")
        self.line.setAccessibleName(label)
        layout.addWidget(self.line, 1)
        browse = QPushButton("Choose…")
        browse.setAccessibleName(f"Choose {label}")
        browse.clicked.connect(self.browse)
        layout.addWidget(browse)

    def browse(self) -> None:
        if self.directory:
            path = QFileDialog.getExistingDirectory(self, "Choose Folder", self.line.text())
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Choose File", self.line.text())
        if path:
            self.line.setText(path)

    def value(self) -> str:
        return self.line.text()


class OptionalNumberEdit(QWidget):
    """A number that may be left to a default (None): the model's own, or the Settings'.

    While the default is chosen the box shows the default's value (`default_value`, e.g.
    the model's temperature from its generation config), or "—" when it is not known.
    """

    def __init__(self, value: float | None, is_float: bool, label: str,
                 default_value: float | None = None, default_text: str = "Model default",
                 minimum: float | None = None, maximum: float | None = None) -> None:  # fmt: skip
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.is_float = is_float
        self.default_value = default_value
        self.spin = QDoubleSpinBox() if is_float else QSpinBox()
        low = minimum if minimum is not None else 0
        if is_float:
            self.spin.setDecimals(3)
            self.spin.setSingleStep(0.05)
            self.spin.setRange(low, maximum if maximum is not None else 1e6)
        else:
            top = 2**31 - 1 if maximum is None else min(int(maximum), 2**31 - 1)
            self.spin.setRange(int(low), top)
        self.spin.setSpecialValueText("—")  # shown at the minimum while the default is unknown
        self.spin.setAccessibleName(label)
        self.default = QCheckBox(default_text)
        self.default.setAccessibleName(f"{label}: {default_text.lower()}")
        self.default.toggled.connect(self._default_toggled)
        self._chosen = value
        self.default.setChecked(value is None)
        self._default_toggled(value is None)
        layout.addWidget(self.spin, 1)
        layout.addWidget(self.default)

    def _default_toggled(self, on: bool) -> None:
        self.spin.setEnabled(not on)
        if on:
            shown = self.default_value
            self.spin.setSpecialValueText("—" if shown is None else "")
            self.spin.setValue(self.spin.minimum() if shown is None else shown)
        else:
            self.spin.setSpecialValueText("")
            if self._chosen is not None:
                self.spin.setValue(self._chosen)
            elif self.default_value is not None:
                self.spin.setValue(self.default_value)

    def value(self) -> float | int | None:
        if self.default.isChecked():
            return None
        return float(self.spin.value()) if self.is_float else int(self.spin.value())


class SettingsDialog(QDialog):
    """Edits every setting the backend lists; OK applies the changed ones."""

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumSize(560, 480)
        self.fields = backend.setting_fields()
        self.model_defaults = backend.model_defaults()
        self.editors: dict[str, QWidget] = {}
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings sections")
        layout.addWidget(self.tabs, 1)
        sections: dict[str, QFormLayout] = {}
        self.devices: DevicesPage | None = None
        device_values = {f.key: f.value for f in self.fields if f.key in DEVICE_KEYS}
        for item in self.fields:
            if item.key in DEVICE_KEYS:  # the Devices tab lists them by name, with a test
                if self.devices is None:
                    self.devices = DevicesPage(backend, device_values.get("mic_device"),
                                               device_values.get("camera_device"))  # fmt: skip
                    self.tabs.addTab(self.devices, "Devices")
                    self.editors["mic_device"] = self.devices.mic
                    self.editors["camera_device"] = self.devices.camera
                continue
            form = sections.get(item.section)
            if form is None:
                page = QWidget()
                form = QFormLayout(page)
                scroll = QScrollArea()
                scroll.setWidgetResizable(True)
                scroll.setWidget(page)
                self.tabs.addTab(scroll, item.section)
                sections[item.section] = form
            editor = self._editor(item)
            editor.setToolTip(item.help)
            if not editor.accessibleName():
                editor.setAccessibleName(item.label)
            if item.help:
                editor.setAccessibleDescription(item.help)
            self.editors[item.key] = editor
            label = QLabel(item.label + ":")
            label.setBuddy(editor)
            form.addRow(label, editor)
            if item.key == "mcp_servers":
                claude = QPushButton("Import from Claude Desktop")
                claude.setAccessibleName("Import the MCP servers of Claude Desktop")
                claude.clicked.connect(self.import_claude_desktop)
                form.addRow("", claude)
        self.error = QLabel()
        self.error.setObjectName("ChipRejected")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        backend_choice = self.editors.get("backend")
        if isinstance(backend_choice, QComboBox):
            backend_choice.currentIndexChanged.connect(self._enable_remote_fields)
            self._enable_remote_fields()

    def import_claude_desktop(self) -> None:
        """Add Claude Desktop's MCP servers (not here yet) to the list; OK saves them."""
        editor = self.editors["mcp_servers"]
        try:
            current = list(editor.value())
            names = [e.get("name", "") for e in current if isinstance(e, dict)]
            added = self.backend.claude_desktop_servers(names)
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        editor.setPlainText(json.dumps(current + added, indent=2, ensure_ascii=False))
        self.error.setText(
            f"Added {', '.join(e['name'] for e in added)} from Claude Desktop (each call asks "
            "first); OK saves."
            if added
            else "Claude Desktop has no MCP servers that are not in the list already."
        )

    def _enable_remote_fields(self) -> None:
        remote = self.editors["backend"].currentData() == "remote"
        for key in REMOTE_KEYS:
            if key in self.editors:
                self.editors[key].setEnabled(remote)

    def _editor(self, item: SettingField) -> QWidget:
        if item.kind == "bool":
            box = QCheckBox()
            box.setChecked(bool(item.value))
            return box
        if item.kind == "int":
            spin = QSpinBox()
            spin.setRange(int(item.minimum if item.minimum is not None else -(2**31)),
                          int(item.maximum if item.maximum is not None else 2**31 - 1))  # fmt: skip
            spin.setValue(int(item.value or 0))
            return spin
        if item.kind == "float":
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setSingleStep(0.05)
            spin.setRange(item.minimum if item.minimum is not None else -1e9,
                          item.maximum if item.maximum is not None else 1e9)  # fmt: skip
            spin.setValue(float(item.value or 0.0))
            return spin
        if item.kind in ("optional_int", "optional_float"):
            return OptionalNumberEdit(item.value, item.kind == "optional_float", item.label,
                                      self.model_defaults.get(item.key),
                                      minimum=item.minimum, maximum=item.maximum)  # fmt: skip
        if item.kind == "choice":
            combo = QComboBox()
            names = CHOICE_TEXT.get(item.key, {})
            for choice in item.choices:
                text = "Default" if choice is None else names.get(choice, str(choice))
                combo.addItem(text, choice)
            index = combo.findData(item.value)
            combo.setCurrentIndex(max(0, index))
            return combo
        if item.kind in ("path", "dir"):
            return PathEdit(str(item.value or ""), item.kind == "dir", item.label)
        if item.kind == "json":
            return JsonEdit(item.value, item.label)
        line = QLineEdit("" if item.value is None else str(item.value))
        if item.kind == "secret":
            line.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        return line

    def values(self) -> dict[str, Any]:
        """Every setting's edited value, typed like the original."""
        result: dict[str, Any] = {}
        for item in self.fields:
            editor = self.editors[item.key]
            if isinstance(editor, QCheckBox):
                value: Any = editor.isChecked()
            elif isinstance(editor, QSpinBox | QDoubleSpinBox):
                value = editor.value()
            elif isinstance(editor, QComboBox):
                value = editor.currentData()
            elif isinstance(editor, OptionalNumberEdit):
                value = editor.value()
            elif isinstance(editor, PathEdit):
                value = editor.value() or (None if item.value is None else "")
            elif isinstance(editor, JsonEdit):
                value = editor.value()
            else:
                value = editor.text()
                if (item.value is None or item.kind == "optional_str") and value == "":
                    value = None
            result[item.key] = value
        return result

    def changed(self) -> dict[str, Any]:
        original = {item.key: item.value for item in self.fields}
        return {k: v for k, v in self.values().items() if v != original[k]}

    def done(self, result: int) -> None:
        if self.devices is not None:
            self.devices.stop_tests()  # the microphone and camera are let go with the dialog
        super().done(result)

    def accept(self) -> None:
        try:
            self.backend.apply_settings(self.changed())
        except ValueError as exc:  # SettingsError too: the message names the setting
            self.error.setText(str(exc))
            return
        super().accept()
