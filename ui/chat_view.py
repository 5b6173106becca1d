"""The scrolling chat: message widgets, streaming at most ~30 repaints a second, announcements."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from ui.backend import MessageView, PrefillView, ToolCardView
from ui.markdown_render import plain_text
from ui.message_widget import MessageWidget

FLUSH_INTERVAL_MS = 33  # coalesce streamed deltas: at most ~30 updates a second


class ChatView(QScrollArea):
    """Messages of one conversation, newest at the bottom."""

    edit_submitted = Signal(str, str)  # message id, text
    regenerate_requested = Signal(str)
    stop_requested = Signal()
    play_requested = Signal(object)
    version_requested = Signal(str, int)  # message id, step
    transcript_save_requested = Signal(str, str)  # message id, format

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatScroll")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAccessibleName("Conversation")
        self.canvas = QWidget()
        self.canvas.setObjectName("ChatCanvas")
        self.column = QVBoxLayout(self.canvas)
        self.column.setContentsMargins(24, 16, 24, 16)
        self.column.setSpacing(12)
        self.placeholder = QLabel(
            "Ask anything, or drop images, recordings, videos, documents or a folder here."
        )
        self.placeholder.setObjectName("Muted")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.column.addWidget(self.placeholder)
        self.column.addStretch(1)
        self.setWidget(self.canvas)
        self.conversation_id = ""
        self.widgets: dict[str, MessageWidget] = {}
        self.last_announcement = ""
        self._follow = True
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_INTERVAL_MS)
        self._timer.timeout.connect(self.flush)
        self.verticalScrollBar().rangeChanged.connect(self._keep_at_bottom)
        self.verticalScrollBar().valueChanged.connect(self._track_follow)
        self.flush_count = 0

    # --- content -------------------------------------------------------------------
    def show_conversation(self, conversation_id: str, messages: list[MessageView]) -> None:
        self.conversation_id = conversation_id
        for widget in self.widgets.values():
            self.column.removeWidget(widget)
            widget.deleteLater()
        self.widgets.clear()
        for message in messages:
            self.add_message(message)
        self._follow = True
        self.placeholder.setVisible(not messages)

    def add_message(self, message: MessageView) -> MessageWidget:
        widget = MessageWidget(message)
        widget.edit_submitted.connect(self.edit_submitted)
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.stop_requested.connect(self.stop_requested)
        widget.play_requested.connect(self.play_requested)
        widget.version_requested.connect(self.version_requested)
        widget.transcript_save_requested.connect(self.transcript_save_requested)
        self.column.insertWidget(self.column.count() - 1, widget)
        self.widgets[message.id] = widget
        self.placeholder.setVisible(False)
        self._follow = True
        return widget

    def message_widgets(self) -> list[MessageWidget]:
        return list(self.widgets.values())

    def last_answer(self) -> MessageView | None:
        for widget in reversed(self.widgets.values()):
            if widget.message.role == "assistant" and widget.message.text:
                return widget.message
        return None

    # --- streaming -----------------------------------------------------------------
    def append_delta(self, message_id: str, kind: str, text: str) -> None:
        widget = self.widgets.get(message_id)
        if widget is None:
            return
        widget.append_delta(kind, text)
        if not self._timer.isActive():
            self._timer.start()

    def set_prefill(self, message_id: str, progress: PrefillView) -> None:
        """Show how far the engine has read a long prompt in the streaming message."""
        widget = self.widgets.get(message_id)
        if widget is not None:
            widget.set_prefill(progress)
            if not self._timer.isActive():
                self._timer.start()

    def add_tool(self, message_id: str, tool: ToolCardView) -> None:
        widget = self.widgets.get(message_id)
        if widget is not None:
            widget.add_tool(tool)
            if not self._timer.isActive():
                self._timer.start()

    def finish(self, message_id: str, final: MessageView | None) -> None:
        widget = self.widgets.get(message_id)
        if widget is None:
            return
        widget.finish(final)
        if widget.message.role == "assistant":
            self.announce(widget)

    def flush(self) -> None:
        dirty = [w for w in self.widgets.values() if w.dirty]
        if not dirty:
            self._timer.stop()
            return
        self.flush_count += 1
        started = time.perf_counter()
        for widget in dirty:
            widget.flush()
        # Adaptive pacing: never spend more than about a third of the time re-rendering.
        spent_ms = (time.perf_counter() - started) * 1000
        self._timer.setInterval(max(FLUSH_INTERVAL_MS, int(2 * spent_ms)))

    # --- accessibility ---------------------------------------------------------------
    def announce(self, widget: MessageWidget) -> None:
        """Tell screen readers the answer is complete, and what it says."""
        message = widget.message
        if message.error:
            text = f"Gemma could not answer: {message.error}"
        else:
            text = "Gemma answered: " + plain_text(message.text)[:600]
        self.last_announcement = text
        widget.setAccessibleDescription(text)
        event = QAccessibleAnnouncementEvent(widget, text)
        QAccessible.updateAccessibility(event)

    # --- scrolling -----------------------------------------------------------------
    def _track_follow(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 40

    def _keep_at_bottom(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
