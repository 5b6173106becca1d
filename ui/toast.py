"""A short message over the bottom of the chat with an action ("Moved to the trash. Undo")."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ui.message_widget import icon_button

TOAST_MS = 10_000


class Toast(QFrame):
    """Shown at the bottom centre of its parent for `TOAST_MS`; `action` when its button is pressed."""

    action = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("Toast")
        self.setAccessibleName("Notification")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 6, 6, 6)
        layout.setSpacing(8)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.label, 1)
        self.button = QPushButton()
        self.button.clicked.connect(self._act)
        layout.addWidget(self.button)
        self.close_button = icon_button("close", "Dismiss the notification")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.close_button)
        self._timer = QTimer(self, singleShot=True, interval=TOAST_MS)
        self._timer.timeout.connect(self.dismiss)
        parent.installEventFilter(self)
        self.hide()

    def show_message(self, text: str, action: str = "", shortcut: str = "") -> None:
        self.label.setText(text)
        self.button.setVisible(bool(action))
        self.button.setText(action)
        self.button.setAccessibleName(f"{action} ({shortcut})" if shortcut else action)
        self.setAccessibleDescription(text)
        self.adjustSize()
        self._place()
        self.show()
        self.raise_()
        self._timer.start()
        QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(self, text))

    def dismiss(self) -> None:
        self._timer.stop()
        self.hide()

    def _act(self) -> None:
        self.dismiss()
        self.action.emit()

    def _place(self) -> None:
        parent = self.parentWidget()
        width = min(max(self.sizeHint().width(), 320), parent.width() - 40)
        self.resize(width, self.sizeHint().height())
        self.move((parent.width() - width) // 2, parent.height() - self.height() - 110)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False
