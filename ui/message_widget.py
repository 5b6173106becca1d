"""One message in the chat: text, thinking, tool cards, attachments, errors and actions;
while a long prompt is read, how far (with the time left) above the Stop button."""

from __future__ import annotations

import html
import json
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.views import answer_stats
from ui import theme
from ui.attachment_views import AttachmentCard
from ui.backend import MessageView, PrefillView, ToolCardView
from ui.long_inputs import transcript_button, transcript_title
from ui.markdown_render import plain_text
from ui.markdown_view import MarkdownView, WrappedLabel


def icon_button(icon: str, name: str, tooltip: str = "") -> QToolButton:
    button = QToolButton()
    button.setObjectName("IconButton")
    button.setIcon(theme.icon(icon))
    button.setAccessibleName(name)
    button.setToolTip(tooltip or name)
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return button


class ThinkingSection(QFrame):
    """The model's thinking, collapsed under "Thought for N s" (or "Thinking…" while live)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ThinkingSection")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 0, 0)
        layout.setSpacing(2)
        self.toggle = QToolButton()
        self.toggle.setObjectName("ThinkingToggle")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setIcon(theme.icon("chevron-right"))
        self.toggle.toggled.connect(self.set_expanded)
        layout.addWidget(self.toggle)
        self.body = WrappedLabel()
        self.body.setObjectName("ThinkingText")
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.setVisible(False)
        layout.addWidget(self.body)
        self.seconds: float | None = None
        self.live = False
        self._update_title()

    def set_text(self, text: str) -> None:
        self.body.setText(text)

    def set_state(self, live: bool, seconds: float | None) -> None:
        self.live, self.seconds = live, seconds
        self._update_title()

    def is_expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        if self.toggle.isChecked() != expanded:
            self.toggle.setChecked(expanded)
            return
        self.body.setVisible(expanded)
        self.toggle.setIcon(theme.icon("chevron-down" if expanded else "chevron-right"))
        self._update_title()

    def _update_title(self) -> None:
        if self.live:
            title = "Thinking…"
        elif self.seconds is not None:
            title = f"Thought for {max(1, round(self.seconds))} s"
        else:
            title = "Thoughts"
        self.toggle.setText(title)
        state = "expanded" if self.toggle.isChecked() else "collapsed"
        self.toggle.setAccessibleName(
            f"{title}, {state}. Press to {'hide' if self.toggle.isChecked() else 'show'} the model's thinking"
        )


class ToolCard(QFrame):
    """A compact card for one tool call and its result."""

    def __init__(self, tool: ToolCardView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ToolCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        head = QHBoxLayout()
        head.setSpacing(6)
        icon = QLabel()
        icon.setPixmap(theme.icon("tool").pixmap(14, 14))
        head.addWidget(icon)
        self.title = QLabel()
        head.addWidget(self.title, 1)
        self.detail = WrappedLabel()
        self.detail.setObjectName("Muted")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addLayout(head)
        layout.addWidget(self.detail)
        self.update_tool(tool)

    def update_tool(self, tool: ToolCardView) -> None:
        self.tool = tool
        args = json.dumps(tool.arguments, ensure_ascii=False)
        if len(args) > 160:
            args = args[:157] + "…"
        status = "failed" if tool.error else ("done" if tool.done else "running…")
        self.title.setText(f"<b>{html.escape(tool.name)}</b> — {status}")
        if tool.error:
            detail = f"{args}\n→ Error: {tool.error}"
        elif tool.done:
            result = (
                tool.result
                if isinstance(tool.result, str)
                else json.dumps(tool.result, ensure_ascii=False, default=str)
            )
            detail = f"{args}\n→ {result[:300]}"
        else:
            detail = args
        self.detail.setText(detail)
        self.setAccessibleName(f"Tool call {tool.name}, {status}")


class MessageWidget(QFrame):
    """A message bubble. Streaming text is buffered and shown by `flush` (driven by the view)."""

    copy_requested = Signal(object)
    edit_submitted = Signal(str, str)  # message id, new text
    regenerate_requested = Signal(str)
    stop_requested = Signal()
    play_requested = Signal(object)
    version_requested = Signal(str, int)  # message id, -1 (the one before) or +1
    transcript_save_requested = Signal(str, str)  # message id, format

    def __init__(self, message: MessageView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.is_user = message.role == "user"
        self.setObjectName("UserBubble" if self.is_user else "AssistantBubble")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._thinking_started: float | None = None
        self._text_started: float | None = None
        self.dirty = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 8)
        layout.setSpacing(6)
        self.role_label = QLabel("You" if self.is_user else "Gemma")
        self.role_label.setObjectName("RoleLabel")
        layout.addWidget(self.role_label)
        self.notes_label = QLabel()  # about long inputs: pages used, how a video was sampled
        self.notes_label.setObjectName("Muted")
        self.notes_label.setWordWrap(True)
        self.notes_label.setVisible(False)
        layout.addWidget(self.notes_label)

        self.attachments_row = QHBoxLayout()
        self.attachments_row.setSpacing(6)
        self.attachment_cards: list[AttachmentCard] = []
        for attachment in message.attachments:
            card = AttachmentCard(attachment)
            card.play_requested.connect(self.play_requested)
            self.attachment_cards.append(card)
            self.attachments_row.addWidget(card)
        self.attachments_row.addStretch(1)
        layout.addLayout(self.attachments_row)

        self.prefill: PrefillView | None = None
        self.prefill_row = QFrame()
        self.prefill_row.setObjectName("PrefillProgress")
        prefill_layout = QVBoxLayout(self.prefill_row)
        prefill_layout.setContentsMargins(0, 0, 0, 0)
        prefill_layout.setSpacing(2)
        self.prefill_label = QLabel()
        self.prefill_label.setObjectName("Muted")
        prefill_layout.addWidget(self.prefill_label)
        self.prefill_bar = QProgressBar()
        self.prefill_bar.setRange(0, 1000)
        self.prefill_bar.setTextVisible(False)
        self.prefill_bar.setMaximumHeight(6)
        self.prefill_bar.setAccessibleName("Prompt reading progress")
        prefill_layout.addWidget(self.prefill_bar)
        self.prefill_row.setVisible(False)
        layout.addWidget(self.prefill_row)

        self.thinking = ThinkingSection()
        self.thinking.setVisible(False)
        layout.addWidget(self.thinking)
        self.tools_column = QVBoxLayout()
        layout.addLayout(self.tools_column)
        self.tool_cards: list[ToolCard] = []

        self.body = MarkdownView()
        layout.addWidget(self.body)
        self.editor: QPlainTextEdit | None = None
        self.edit_row: QWidget | None = None

        self.error_card = QFrame()
        self.error_card.setObjectName("ErrorCard")
        error_layout = QVBoxLayout(self.error_card)
        error_layout.setContentsMargins(10, 6, 10, 6)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        error_layout.addWidget(self.error_label)
        self.error_card.setVisible(False)
        layout.addWidget(self.error_card)

        actions = QHBoxLayout()
        actions.setSpacing(2)
        self.versions = QWidget()
        versions = QHBoxLayout(self.versions)
        versions.setContentsMargins(0, 0, 6, 0)
        versions.setSpacing(0)
        self.previous_version = icon_button("chevron-left", "Previous version")
        self.previous_version.clicked.connect(
            lambda: self.version_requested.emit(self.message.id, -1)
        )
        versions.addWidget(self.previous_version)
        self.version_label = QLabel()
        self.version_label.setObjectName("Muted")
        versions.addWidget(self.version_label)
        self.next_version = icon_button("chevron-right", "Next version")
        self.next_version.clicked.connect(lambda: self.version_requested.emit(self.message.id, 1))
        versions.addWidget(self.next_version)
        actions.addWidget(self.versions)
        self.copy_button = icon_button("copy", "Copy message")
        self.copy_button.clicked.connect(self.copy)
        actions.addWidget(self.copy_button)
        self.edit_button = icon_button("edit", "Edit and resend")
        self.edit_button.clicked.connect(self.begin_edit)
        self.edit_button.setVisible(self.is_user)
        actions.addWidget(self.edit_button)
        self.regenerate_button = icon_button("regenerate", "Regenerate answer")
        self.regenerate_button.clicked.connect(
            lambda: self.regenerate_requested.emit(self.message.id)
        )
        self.regenerate_button.setVisible(not self.is_user)
        actions.addWidget(self.regenerate_button)
        self.stop_button = icon_button("stop", "Stop generating")
        self.stop_button.clicked.connect(self.stop_requested)
        actions.addWidget(self.stop_button)
        self.stopped_label = QLabel("■ Stopped")
        self.stopped_label.setObjectName("StoppedBadge")
        self.stopped_label.setToolTip("You stopped this answer before it was complete")
        self.stopped_label.setAccessibleName("Stopped by you before it was complete")
        actions.addWidget(self.stopped_label)
        self.transcript_button = transcript_button(
            lambda fmt: self.transcript_save_requested.emit(self.message.id, fmt)
        )
        actions.addWidget(self.transcript_button)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("Muted")
        actions.addWidget(self.stats_label)
        actions.addStretch(1)
        layout.addLayout(actions)
        self.refresh()

    # --- streaming -----------------------------------------------------------------
    def set_prefill(self, progress: PrefillView) -> None:
        """How far the engine has read a long prompt (shown until the first token)."""
        self.prefill = progress
        self.dirty = True

    def append_delta(self, kind: str, text: str) -> None:
        now = time.monotonic()
        self.prefill = None
        if kind == "thinking":
            self._thinking_started = self._thinking_started or now
            self.message.thinking += text
        else:
            if self._thinking_started and self._text_started is None:
                self.message.thinking_seconds = now - self._thinking_started
            self._text_started = self._text_started or now
            self.message.text += text
        self.dirty = True

    def add_tool(self, tool: ToolCardView) -> None:
        for index, existing in enumerate(self.message.tools):
            if tool.call_id and existing.call_id == tool.call_id:
                self.message.tools[index] = tool
                self.dirty = True
                return
        self.message.tools.append(tool)
        self.dirty = True

    def finish(self, final: MessageView | None) -> None:
        if final is not None:
            if final.thinking_seconds is None:
                final.thinking_seconds = self.message.thinking_seconds
            if final.thinking and final.thinking_seconds is None and self._thinking_started:
                final.thinking_seconds = time.monotonic() - self._thinking_started
            final.attachments = final.attachments or self.message.attachments
            self.message = final
        self.message.streaming = False
        self.prefill = None
        self.refresh()

    def flush(self) -> None:
        if self.dirty:
            self.refresh()

    # --- display -------------------------------------------------------------------
    def refresh(self) -> None:
        self.dirty = False
        message = self.message
        self.body.set_markdown(message.text, final=not message.streaming)
        reading = self.prefill is not None and message.streaming
        if self.prefill_row.isHidden() == reading:
            self.prefill_row.setVisible(reading)
        if reading:
            text = self.prefill.text()
            self.prefill_label.setText(text)
            self.prefill_bar.setValue(round(1000 * self.prefill.fraction))
            self.prefill_row.setAccessibleName(f"{text}. Stop generating cancels it.")
        shown = bool(message.text) or (message.streaming and not message.thinking)
        self.body.setVisible(shown and not reading)
        if message.thinking:
            self.thinking.setVisible(True)
            self.thinking.set_text(message.thinking)
            live = message.streaming and not message.text
            self.thinking.set_state(live, message.thinking_seconds)
        for index, tool in enumerate(message.tools):
            if index < len(self.tool_cards):
                self.tool_cards[index].update_tool(tool)
            else:
                card = ToolCard(tool)
                self.tool_cards.append(card)
                self.tools_column.addWidget(card)
        if message.error:
            hint = message.error_hint
            self.error_label.setText(f"<b>{message.error}</b>" + (f"<br>{hint}" if hint else ""))
            self.error_card.setAccessibleName(f"Error: {message.error} {hint}")
            self.error_card.setVisible(True)
        else:
            self.error_card.setVisible(False)
        self.stop_button.setVisible(message.streaming)
        self.transcript_button.setVisible(bool(message.transcript))
        if message.transcript:
            self.role_label.setText(transcript_title(message.transcript))
        self.notes_label.setText("\n".join(message.notes))
        self.notes_label.setVisible(bool(message.notes))
        self.regenerate_button.setVisible(
            not self.is_user and not message.streaming and not message.transcript
        )
        self.copy_button.setEnabled(bool(message.text))
        numbers, explained = answer_stats(None if message.streaming else message.stats)
        self.stats_label.setText(numbers)
        self.stats_label.setToolTip(explained)
        self.stopped_label.setVisible(message.stopped and not message.streaming)
        has_versions = message.versions > 1 and not message.streaming
        self.versions.setVisible(has_versions)
        if has_versions:
            self.version_label.setText(f"{message.version}/{message.versions}")
            self.version_label.setAccessibleName(f"Version {message.version} of {message.versions}")
            self.previous_version.setEnabled(message.version > 1)
            self.next_version.setEnabled(message.version < message.versions)
        who = "Your message" if self.is_user else "Answer"
        state = ", still generating" if message.streaming else ""
        if message.stopped and not message.streaming:
            state = ", stopped"
        if has_versions:
            state += f", version {message.version} of {message.versions}"
        self.setAccessibleName(f"{who}{state}")
        if not message.streaming:  # the full text once, not 30 times a second
            self.setAccessibleDescription(plain_text(message.text)[:2000])

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.message.text)
        self.copy_requested.emit(self.message)

    # --- editing (user messages) -----------------------------------------------------
    def begin_edit(self) -> None:
        if self.editor is not None:
            return
        self.editor = QPlainTextEdit(self.message.text)
        self.editor.setAccessibleName("Edit message")
        self.editor.setMinimumHeight(70)
        self.edit_row = QWidget()
        row = QHBoxLayout(self.edit_row)
        row.setContentsMargins(0, 0, 0, 0)
        note = QLabel("Sending keeps this version and its answers: ‹ › switches back.")
        note.setObjectName("Muted")
        row.addWidget(note)
        row.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.setAccessibleName("Cancel editing")
        cancel.clicked.connect(self.end_edit)
        save = QPushButton("Send")
        save.setObjectName("Primary")
        save.setAccessibleName("Send edited message")
        save.clicked.connect(self._submit_edit)
        row.addWidget(cancel)
        row.addWidget(save)
        layout = self.layout()
        index = layout.indexOf(self.body)
        layout.insertWidget(index + 1, self.editor)
        layout.insertWidget(index + 2, self.edit_row)
        self.body.setVisible(False)
        self.editor.setFocus()

    def _submit_edit(self) -> None:
        if self.editor is None:
            return
        text = self.editor.toPlainText().strip()
        self.end_edit()
        if text:
            self.edit_submitted.emit(self.message.id, text)

    def end_edit(self) -> None:
        for widget in (self.editor, self.edit_row):
            if widget is not None:
                widget.setParent(None)
                widget.deleteLater()
        self.editor = self.edit_row = None
        self.body.setVisible(True)
