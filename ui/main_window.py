"""The main window: sidebar, chat, composer, status line, first-run screen and the menu bar."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.backend import AttachmentView, Backend, MessageView, ModelStatus, RunStats
from ui.chat_view import ChatView
from ui.composer import Composer, file_paths
from ui.first_run import FirstRunScreen
from ui.markdown_view import warm_up_rendering
from ui.model_dialog import ModelDialog
from ui.push_to_talk import HoldToTalkFilter, PushToTalk
from ui.settings_dialog import SettingsDialog
from ui.sidebar import Sidebar
from ui.status_line import StatusLine
from ui.webcam_dialog import WebcamDialog

MINIMUM_SIZE = (760, 520)
DEFAULT_SIZE = (1100, 760)


class MainWindow(QMainWindow):
    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.setWindowTitle("Gemma Desk")
        self.setWindowIcon(theme.app_icon())
        self.setMinimumSize(*MINIMUM_SIZE)
        self.resize(*DEFAULT_SIZE)
        self.setAcceptDrops(True)
        self.conversation_id = ""

        self.sidebar = Sidebar(backend)
        self.chat = ChatView()
        self.composer = Composer(backend)
        chat_page = QWidget()
        chat_layout = QVBoxLayout(chat_page)
        chat_layout.setContentsMargins(0, 0, 0, 12)
        chat_layout.addWidget(self.chat, 1)
        composer_holder = QVBoxLayout()
        composer_holder.setContentsMargins(24, 0, 24, 0)
        composer_holder.addWidget(self.composer)
        chat_layout.addLayout(composer_holder)
        self.first_run = FirstRunScreen(backend)
        self.pages = QStackedWidget()
        self.pages.addWidget(chat_page)
        self.pages.addWidget(self.first_run)
        self.chat_page = chat_page
        self.splitter = QSplitter()
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.pages)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([250, 850])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.status_line = StatusLine()
        self.setStatusBar(self.status_line)

        self.push_to_talk = PushToTalk(backend, self.composer.recording_slot, self)
        self.hold_to_talk = HoldToTalkFilter(self.push_to_talk, self)
        QApplication.instance().installEventFilter(self.hold_to_talk)
        self._approval_boxes: dict[object, QMessageBox] = {}
        self._build_menus()
        self._connect()
        self.sync_settings()
        self.on_model_status(backend.model_status())
        self.sidebar.refresh()
        if self.sidebar.list.count():
            self.sidebar.list.setCurrentRow(0)
        else:
            self.new_conversation()
        self.composer.input.setFocus()
        QTimer.singleShot(0, warm_up_rendering)

    # --- wiring ------------------------------------------------------------------------
    def _connect(self) -> None:
        b = self.backend
        b.conversations_changed.connect(self.sidebar.refresh)
        b.conversation_reset.connect(self.on_conversation_reset)
        b.message_added.connect(self.on_message_added)
        b.delta.connect(self.on_delta)
        b.tool_event.connect(self.on_tool)
        b.message_finished.connect(self.on_finished)
        b.generating_changed.connect(self.on_generating)
        b.model_status_changed.connect(self.on_model_status)
        b.stats_changed.connect(self.on_stats)
        b.transcript_ready.connect(self.composer.set_text)
        b.notice.connect(self.status_line.show_notice)
        self.sidebar.selected.connect(self.open_conversation)
        self.sidebar.new_requested.connect(self.new_conversation)
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(self.stop)
        self.composer.camera_requested.connect(self.open_webcam)
        self.composer.mic_pressed.connect(self.push_to_talk.press)
        self.composer.mic_released.connect(self.push_to_talk.release)
        self.push_to_talk.attachment_ready.connect(self.composer.add_attachment)
        self.push_to_talk.failed.connect(lambda reason: self.composer.reject("Microphone", reason))
        self.chat.edit_submitted.connect(self.edit_and_resend)
        self.chat.regenerate_requested.connect(self.regenerate)
        self.chat.stop_requested.connect(self.stop)
        self.chat.play_requested.connect(self.backend.play_audio)
        self.first_run.model_chosen.connect(self.backend.load_model)
        # Optional backend signals (the app backend has them; the demo backend does not).
        if hasattr(b, "tool_approval_requested"):
            b.tool_approval_requested.connect(self.ask_tool_approval)
            b.tool_approval_resolved.connect(self._close_tool_approval)

    def _action(self, menu, text: str, slot, shortcut=None, role=None, name: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if role is not None:
            action.setMenuRole(role)
        action.triggered.connect(slot)
        menu.addAction(action)
        if name:
            setattr(self, name, action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        std, role = QKeySequence.StandardKey, QAction.MenuRole
        app_menu = bar.addMenu("&Gemma Desk")
        self._action(app_menu, "About Gemma Desk", self.about, role=role.AboutRole)
        self._action(
            app_menu,
            "Settings…",
            self.open_settings,
            std.Preferences,
            role.PreferencesRole,
            "settings_action",
        )
        self.settings_action.setShortcuts([QKeySequence("Ctrl+,")])
        self._action(
            app_menu, "Quit Gemma Desk", self.close, std.Quit, role.QuitRole, "quit_action"
        )
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "New Chat", self.new_conversation, std.New, name="new_action")
        self._action(
            file_menu, "Attach Files…", self.composer.choose_files, std.Open, name="attach_action"
        )
        self._action(
            file_menu, "Record Video Clip…", self.open_webcam, "Ctrl+Shift+V", name="webcam_action"
        )
        file_menu.addSeparator()
        self._action(file_menu, "Close Window", self.close, std.Close)
        edit_menu = bar.addMenu("&Edit")
        for text, key, slot in (
            ("Undo", std.Undo, lambda: self._edit("undo")),
            ("Redo", std.Redo, lambda: self._edit("redo")),
            ("Cut", std.Cut, lambda: self._edit("cut")),
            ("Copy", std.Copy, lambda: self._edit("copy")),
            ("Paste", std.Paste, lambda: self._edit("paste")),
            ("Select All", std.SelectAll, lambda: self._edit("selectAll")),
        ):
            action = self._action(edit_menu, text, slot, key)
            action.setShortcutContext(
                Qt.ShortcutContext.WidgetShortcut
            )  # let the focused field handle it
        edit_menu.addSeparator()
        self._action(
            edit_menu,
            "Copy Last Answer",
            self.copy_last_answer,
            "Ctrl+Shift+C",
            name="copy_last_action",
        )
        self._action(
            edit_menu, "Find Chats", self.sidebar.search.setFocus, std.Find, name="find_action"
        )
        chat_menu = bar.addMenu("&Chat")
        self._action(chat_menu, "Send", self.composer.submit, "Ctrl+Return", name="send_action")
        self._action(chat_menu, "Stop", self.stop, "Ctrl+.", name="stop_action")
        self._action(
            chat_menu, "Regenerate", self.regenerate_last, "Ctrl+R", name="regenerate_action"
        )
        chat_menu.addSeparator()
        self._action(
            chat_menu,
            "Rename Chat…",
            lambda: self.sidebar.rename(self.conversation_id),
            name="rename_action",
        )
        self._action(
            chat_menu,
            "Delete Chat",
            lambda: self.sidebar.delete(self.conversation_id),
            "Ctrl+Backspace",
            name="delete_action",
        )
        chat_menu.addSeparator()
        self.dictation_action = self._action(
            chat_menu, "Dictation Mode (push-to-talk transcribes)", self._toggle_dictation
        )
        self.dictation_action.setCheckable(True)
        view_menu = bar.addMenu("&View")
        self._action(
            view_menu, "Toggle Sidebar", self.toggle_sidebar, "Ctrl+Alt+S", name="sidebar_action"
        )
        self._action(view_menu, "Focus Message Field", self.composer.input.setFocus, "Ctrl+L")
        model_menu = bar.addMenu("&Model")
        self._action(
            model_menu,
            "Model && Memory…",
            self.open_model_dialog,
            "Ctrl+Shift+M",
            name="model_action",
        )
        self._action(model_menu, "Set Up a Model…", self.show_first_run)
        window_menu = bar.addMenu("&Window")
        self._action(window_menu, "Minimize", self.showMinimized, "Ctrl+M")
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "Keyboard Shortcuts", self.show_shortcuts)

    def _edit(self, operation: str) -> None:
        widget = QApplication.focusWidget()
        if widget is not None and hasattr(widget, operation):
            getattr(widget, operation)()

    # --- conversations ---------------------------------------------------------------------
    def new_conversation(self) -> None:
        conversation_id = self.backend.new_conversation()
        self.sidebar.refresh(select=conversation_id)
        self.open_conversation(conversation_id)
        self.composer.input.setFocus()

    def open_conversation(self, conversation_id: str) -> None:
        if conversation_id == self.conversation_id and self.chat.conversation_id == conversation_id:
            return
        self.conversation_id = conversation_id
        self.chat.show_conversation(conversation_id, self.backend.messages(conversation_id))
        self.composer.set_generating(self.backend.is_generating(conversation_id))

    def on_conversation_reset(self, conversation_id: str) -> None:
        if conversation_id == self.conversation_id:
            self.chat.show_conversation(conversation_id, self.backend.messages(conversation_id))

    def on_message_added(self, conversation_id: str, message: MessageView) -> None:
        if conversation_id == self.conversation_id and message.id not in self.chat.widgets:
            self.chat.add_message(message)

    def on_delta(self, conversation_id: str, message_id: str, kind: str, text: str) -> None:
        if conversation_id == self.conversation_id:
            self.chat.append_delta(message_id, kind, text)

    def on_tool(self, conversation_id: str, message_id: str, tool) -> None:
        if conversation_id == self.conversation_id:
            self.chat.add_tool(message_id, tool)

    def on_finished(self, conversation_id: str, message_id: str, final: MessageView) -> None:
        if conversation_id == self.conversation_id:
            self.chat.flush()
            self.chat.finish(message_id, final)

    def on_generating(self, conversation_id: str, generating: bool) -> None:
        if conversation_id == self.conversation_id:
            self.composer.set_generating(generating)
        self.sidebar.refresh()

    # --- actions -----------------------------------------------------------------------------
    def send(self, text: str, attachments: list[AttachmentView], budget: int) -> None:
        if not self.conversation_id:
            self.new_conversation()
        self.backend.send(self.conversation_id, text, attachments, budget)

    def stop(self) -> None:
        if self.conversation_id:
            self.backend.stop(self.conversation_id)

    def regenerate(self, message_id: str) -> None:
        self.backend.regenerate(self.conversation_id, message_id)

    def regenerate_last(self) -> None:
        answer = self.chat.last_answer()
        if answer is not None and not self.backend.is_generating(self.conversation_id):
            self.regenerate(answer.id)

    def edit_and_resend(self, message_id: str, text: str) -> None:
        self.backend.edit_and_resend(self.conversation_id, message_id, text)

    def copy_last_answer(self) -> None:
        answer = self.chat.last_answer()
        if answer is not None:
            QGuiApplication.clipboard().setText(answer.text)
            self.status_line.show_notice("Copied the last answer.")

    def _toggle_dictation(self, checked: bool) -> None:
        self.push_to_talk.dictation = checked
        try:
            self.backend.apply_settings({"dictation_mode": checked})
        except ValueError as exc:  # a backend without the setting: the toggle still works
            self.status_line.show_notice(str(exc))

    def sync_settings(self) -> None:
        """Make the window follow the settings it reflects (after start and the Settings dialog)."""
        dictation = bool(self.backend.setting("dictation_mode", False))
        self.push_to_talk.dictation = dictation
        self.dictation_action.setChecked(dictation)

    def ask_tool_approval(self, request) -> QMessageBox:
        """Ask whether a tool may run (`request` is an `app.tools.approval.ToolApproval`); an
        MCP server's tool may also be allowed always."""
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        if request.can_always_allow:
            buttons |= QMessageBox.StandardButton.YesToAll
        box = QMessageBox(QMessageBox.Icon.Question, "Run a Tool?", request.prompt, buttons, self)
        box.setAccessibleName("Allow the tool call")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setText("Allow Once")
        if request.can_always_allow:
            box.button(QMessageBox.StandardButton.YesToAll).setText("Always Allow This Tool")
        box.button(QMessageBox.StandardButton.No).setText("Don't Allow")

        def answered(button) -> None:
            choice = box.standardButton(button)
            allowed = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.YesToAll
            request.answer(choice in allowed, always=choice == QMessageBox.StandardButton.YesToAll)

        box.buttonClicked.connect(answered)
        box.finished.connect(lambda _: self._tool_approval_closed(request))
        self._approval_boxes[request] = box
        box.open()
        return box

    def _tool_approval_closed(self, request) -> None:
        request.answer(False)  # closed without a choice: no (ignored after "Allow")
        self._approval_boxes.pop(request, None)

    def _close_tool_approval(self, request) -> None:
        """The request was settled elsewhere (Stop, timeout, quitting): drop its question."""
        box = self._approval_boxes.pop(request, None)
        if box is not None:
            box.close()

    def toggle_sidebar(self) -> None:
        self.sidebar.setVisible(not self.sidebar.isVisible())

    def open_webcam(self) -> WebcamDialog:
        dialog = WebcamDialog(self.backend, self)
        dialog.finished.connect(
            lambda _: dialog.attachment and self.composer.add_attachment(dialog.attachment)
        )
        dialog.open()
        return dialog

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.backend, self)
        dialog.accepted.connect(self.sync_settings)
        dialog.open()
        return dialog

    def open_model_dialog(self) -> ModelDialog:
        dialog = ModelDialog(self.backend, self)
        dialog.open()
        return dialog

    def show_first_run(self) -> None:
        self.first_run.refresh()
        self.pages.setCurrentWidget(self.first_run)

    def about(self) -> None:
        QMessageBox.about(self, "About Gemma Desk",
                          "Gemma Desk — Gemma 4 running entirely on this computer with MLX.")  # fmt: skip

    def show_shortcuts(self) -> None:
        lines = []
        for menu in self.menuBar().findChildren(QAction):
            if menu.shortcut().toString():
                lines.append(
                    f"{menu.text().replace('&&', '&')}: {menu.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}"
                )
        lines.append("Hold F5: push-to-talk")
        QMessageBox.information(self, "Keyboard Shortcuts", "\n".join(lines))

    # --- model and stats ---------------------------------------------------------------------
    def on_model_status(self, status: ModelStatus) -> None:
        self.status_line.set_model(status)
        if status.state in ("ready", "loading"):
            self.pages.setCurrentWidget(self.chat_page)
        elif status.state == "none":
            self.show_first_run()
        elif status.state == "error":
            self.show_first_run()
            self.first_run.error.setText(status.message)

    def on_stats(self, stats: RunStats) -> None:
        self.status_line.set_stats(stats)

    # --- window-wide drops -----------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if file_paths(event.mimeData()) or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.composer.dropEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        QApplication.instance().removeEventFilter(self.hold_to_talk)
        self.backend.shutdown()
        super().closeEvent(event)


def show_later(window: MainWindow, ms: int = 0) -> None:
    QTimer.singleShot(ms, window.show)
