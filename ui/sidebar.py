"""The conversation list: new, search, rename, delete (to the trash), and the way to the trash.

Titles are shown on one line, elided at the sidebar's width (no horizontal scrolling);
the full title is the tooltip and the accessible text.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.backend import Backend, ConversationSummary
from ui.message_widget import icon_button


class Sidebar(QFrame):
    """Lists conversations (newest first); emits `selected` with a conversation id."""

    selected = Signal(str)
    new_requested = Signal()
    deleted = Signal(str, str)  # the conversation moved to the trash, its neighbour ("" none)
    trash_requested = Signal()

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setObjectName("Sidebar")
        self.setMinimumWidth(200)
        self.setMaximumWidth(360)
        self.setAccessibleName("Conversations sidebar")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        header = QHBoxLayout()
        title = QLabel("<b>Chats</b>")
        header.addWidget(title)
        header.addStretch(1)
        self.new_button = icon_button("new-chat", "New chat", "New chat (⌘N)")
        self.new_button.setIconSize(QSize(20, 20))
        self.new_button.clicked.connect(self.new_requested)
        header.addWidget(self.new_button)
        layout.addLayout(header)
        self.search = QLineEdit()
        self.search.setObjectName("SidebarSearch")
        self.search.setPlaceholderText("Search chats")
        self.search.setClearButtonEnabled(True)
        search_icon = self.search.addAction(
            theme.icon("search"), QLineEdit.ActionPosition.LeadingPosition
        )
        self.search.setAccessibleName("Search conversations")
        for button in self.search.findChildren(QToolButton):
            button.setAccessibleName(
                "Clear search" if button.defaultAction() is not search_icon else "Search"
            )
        self._search_timer = QTimer(self, singleShot=True, interval=200)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        layout.addWidget(self.search)
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setWordWrap(False)
        self.list.setUniformItemSizes(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemDoubleClicked.connect(
            lambda item: self.rename(item.data(Qt.ItemDataRole.UserRole))
        )
        layout.addWidget(self.list, 1)
        rename = QAction("Rename", self.list, shortcut=QKeySequence(Qt.Key.Key_F2))
        rename.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        rename.triggered.connect(lambda: self.rename(self.current_id()))
        delete = QAction(
            "Delete", self.list, shortcut=QKeySequence(QKeySequence.StandardKey.Delete)
        )
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(lambda: self.delete(self.current_id()))
        self.list.addActions([rename, delete])
        self.trash_button = QToolButton()
        self.trash_button.setObjectName("IconButton")
        self.trash_button.setIcon(theme.icon("trash"))
        self.trash_button.setText("Trash")
        self.trash_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.trash_button.setAccessibleName("Trash: restore deleted chats")
        self.trash_button.setToolTip("Deleted chats, kept for 30 days")
        self.trash_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.trash_button.clicked.connect(self.trash_requested)
        layout.addWidget(self.trash_button, 0, Qt.AlignmentFlag.AlignLeft)
        self._updating = False

    def current_id(self) -> str:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else ""

    def refresh(self, select: str | None = None) -> None:
        """Reload the list from the backend, keeping (or moving to) the selection."""
        keep = select if select is not None else self.current_id()
        self._updating = True
        self.list.clear()
        for summary in self.backend.conversations(self.search.text().strip()):
            self.list.addItem(self._item(summary))
            if summary.id == keep:
                self.list.setCurrentRow(self.list.count() - 1)
        self._updating = False
        if select is not None and self.current_id() == select:
            self.selected.emit(select)

    def _item(self, summary: ConversationSummary) -> QListWidgetItem:
        title = " ".join(summary.title.split()) or "New chat"  # one line
        item = QListWidgetItem(("● " if summary.generating else "") + title)
        item.setData(Qt.ItemDataRole.UserRole, summary.id)
        item.setToolTip(title)
        item.setData(
            Qt.ItemDataRole.AccessibleTextRole,
            title + (", generating" if summary.generating else ""),
        )
        return item

    def _current_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if current is not None and not self._updating:
            self.selected.emit(current.data(Qt.ItemDataRole.UserRole))

    def _context_menu(self, position) -> None:
        item = self.list.itemAt(position)
        if item is None:
            return
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename(conversation_id))
        menu.addAction("Delete", lambda: self.delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))

    def rename(self, conversation_id: str, title: str | None = None) -> None:
        if not conversation_id:
            return
        if title is None:
            current = next(
                (s.title for s in self.backend.conversations() if s.id == conversation_id), ""
            )
            title, ok = QInputDialog.getText(self, "Rename Chat", "Name:", text=current)
            if not ok:
                return
        if title.strip():
            self.backend.rename_conversation(conversation_id, title.strip())
            self.refresh()

    def neighbour_of(self, conversation_id: str) -> str:
        """The chat listed after this one (else before it); "" when it is the only one."""
        ids = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
        if conversation_id not in ids:
            return ids[0] if ids else ""
        index = ids.index(conversation_id)
        rest = ids[index + 1 :] + ids[:index][::-1]
        return rest[0] if rest else ""

    def delete(self, conversation_id: str, confirm: bool = True) -> None:
        if not conversation_id:
            return
        if confirm:
            answer = QMessageBox.question(
                self, "Delete Chat",
                "Move this chat to the trash? You can undo this, or restore it from the trash "
                "for 30 days.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                return
        neighbour = self.neighbour_of(conversation_id)
        self.backend.delete_conversation(conversation_id)
        self.refresh()
        self.deleted.emit(conversation_id, neighbour)
