"""The trash: chats deleted in the last 30 days, to restore or delete for good."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.backend import Backend


class TrashDialog(QDialog):
    """Lists the trash; Restore puts a chat back, Delete Forever and Empty Trash remove."""

    restored = Signal(str)  # the conversation id put back

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Trash")
        self.setAccessibleName("Trash")
        self.setMinimumSize(460, 380)
        layout = QVBoxLayout(self)
        note = QLabel("Deleted chats stay here for 30 days, then they are removed for good.")
        note.setObjectName("Muted")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.list = QListWidget()
        self.list.setAccessibleName("Chats in the trash")
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.itemSelectionChanged.connect(self._enable)
        self.list.itemActivated.connect(lambda _: self.restore())
        layout.addWidget(self.list, 1)
        self.empty_label = QLabel("The trash is empty.")
        self.empty_label.setObjectName("Muted")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty_label)
        buttons = QDialogButtonBox()
        self.restore_button = QPushButton("Restore")
        self.restore_button.setAccessibleName("Restore the selected chats")
        self.restore_button.clicked.connect(self.restore)
        buttons.addButton(self.restore_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.delete_button = QPushButton("Delete Forever…")
        self.delete_button.setAccessibleName("Delete the selected chats forever")
        self.delete_button.clicked.connect(self.delete_selected)
        buttons.addButton(self.delete_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.empty_button = QPushButton("Empty Trash…")
        self.empty_button.setAccessibleName("Empty the trash")
        self.empty_button.clicked.connect(self.empty)
        buttons.addButton(self.empty_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for chat in self.backend.trash():
            title = " ".join((chat.title or "New chat").split())
            when = time.strftime("%d %b %Y, %H:%M", time.localtime(chat.deleted_at))
            days = f"{chat.days_left} day{'s' if chat.days_left != 1 else ''} left"
            item = QListWidgetItem(f"{title}\n{when} · {days}")
            item.setData(Qt.ItemDataRole.UserRole, chat.id)
            item.setToolTip(chat.title)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{title}, deleted {when}, {days}")
            self.list.addItem(item)
        empty = self.list.count() == 0
        self.list.setVisible(not empty)
        self.empty_label.setVisible(empty)
        self.empty_button.setEnabled(not empty)
        if not empty:
            self.list.setCurrentRow(0)
        self._enable()

    def selected_ids(self) -> list[str]:
        return [item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()]

    def _enable(self) -> None:
        chosen = bool(self.selected_ids())
        self.restore_button.setEnabled(chosen)
        self.delete_button.setEnabled(chosen)

    def restore(self) -> None:
        for conversation_id in self.selected_ids():
            self.backend.restore_conversation(conversation_id)
            self.restored.emit(conversation_id)
        self.refresh()

    def _confirm(self, text: str) -> bool:
        answer = QMessageBox.warning(
            self, "Delete Forever", text + " This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )  # fmt: skip
        return answer == QMessageBox.StandardButton.Yes

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if ids and self._confirm(f"Delete {len(ids)} chat{'s' if len(ids) > 1 else ''} for good?"):
            for conversation_id in ids:
                self.backend.delete_forever(conversation_id)
            self.refresh()

    def empty(self) -> None:
        if self.list.count() and self._confirm("Delete every chat in the trash for good?"):
            self.backend.delete_forever("")
            self.refresh()
