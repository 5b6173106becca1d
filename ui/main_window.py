"""The main window: sidebar, chat, composer, status line, first-run screen and the menu bar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QFileDialog,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui import about_box, theme
from ui.assistants import AssistantsDialog, ChatHeader, ChatSettingsDialog
from ui.backend import AttachmentView, Backend, MessageView, ModelStatus, RunStats
from ui.chat_view import ChatView
from ui.composer import Composer, file_paths
from ui.export_dialog import ExportDialog
from ui.first_run import FirstRunScreen
from ui.long_inputs import RecordBar, TranscriptProgress, save_transcript
from ui.markdown_view import warm_up_rendering
from ui.model_dialog import ModelDialog
from ui.push_to_talk import HoldToTalkFilter, PushToTalk
from ui.settings_dialog import SettingsDialog
from ui.sidebar import Sidebar
from ui.status_line import StatusLine
from ui.toast import Toast
from ui.trash_dialog import TrashDialog
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
        self.header = ChatHeader(backend)
        self.header.setObjectName("ChatHeader")
        self._context_used = 0  # the open chat's tokens, for the status line's meter
        chat_page = QWidget()
        chat_layout = QVBoxLayout(chat_page)
        chat_layout.setContentsMargins(0, 0, 0, 12)
        chat_layout.addWidget(self.header)
        chat_layout.addWidget(self.chat, 1)
        composer_holder = QVBoxLayout()
        composer_holder.setContentsMargins(24, 0, 24, 0)
        self.transcript_progress = TranscriptProgress()
        composer_holder.addWidget(self.transcript_progress)
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
        self.toast = Toast(chat_page)
        self.toast.action.connect(self.undo_delete)

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
        b.prefill_progress.connect(self.on_prefill_progress)
        b.tool_event.connect(self.on_tool)
        b.message_finished.connect(self.on_finished)
        b.generating_changed.connect(self.on_generating)
        b.model_status_changed.connect(self.on_model_status)
        b.stats_changed.connect(self.on_stats)
        b.transcript_ready.connect(self.composer.set_text)
        b.notice.connect(self.status_line.show_notice)
        self.sidebar.selected.connect(self.open_conversation)
        self.sidebar.new_requested.connect(lambda: self.new_conversation())
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(self.stop)
        self.composer.camera_requested.connect(self.open_webcam)
        self.composer.mic_pressed.connect(self.composer.clear_problems)
        self.composer.mic_pressed.connect(self.push_to_talk.press)
        self.composer.thinking_toggled.connect(self.set_thinking)
        self.sidebar.deleted.connect(self.on_deleted)
        self.sidebar.trash_requested.connect(self.open_trash)
        self.header.settings_requested.connect(self.open_chat_settings)
        self.header.changed.connect(self._sync_chat_controls)
        self.chat.version_requested.connect(self.switch_version)
        self.composer.mic_released.connect(self.push_to_talk.release)
        self.push_to_talk.attachment_ready.connect(self.composer.add_attachment)
        self.push_to_talk.failed.connect(lambda reason: self.composer.reject("Microphone", reason))
        self.chat.edit_submitted.connect(self.edit_and_resend)
        self.chat.regenerate_requested.connect(self.regenerate)
        self.chat.stop_requested.connect(self.stop)
        self.chat.play_requested.connect(self.backend.play_audio)
        self.chat.transcript_save_requested.connect(self.save_transcript)
        b.input_progress.connect(self.on_input_progress)
        self.transcript_progress.cancel_requested.connect(self.stop)
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
        self._action(app_menu, "Check for Updates…", lambda: about_box.check_for_updates(self),
                     role=role.ApplicationSpecificRole, name="update_action")  # fmt: skip
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
        self._action(file_menu, "New Chat", lambda: self.new_conversation(), std.New,
                     name="new_action")  # fmt: skip
        self.assistant_menu = file_menu.addMenu("New Chat with Assistant")
        self.assistant_menu.aboutToShow.connect(self._fill_assistant_menu)
        self._fill_assistant_menu()
        self._action(
            file_menu, "Attach Files…", self.composer.choose_files, std.Open, name="attach_action"
        )
        self._action(
            file_menu, "Attach Folder…", self.choose_folder, "Ctrl+Shift+O", name="folder_action"
        )
        self._action(
            file_menu, "Record Video Clip…", self.open_webcam, "Ctrl+Shift+V", name="webcam_action"
        )
        self._action(
            file_menu, "Record Meeting…", self.record_meeting, "Ctrl+Shift+R", name="record_action"
        )
        file_menu.addSeparator()
        self._action(file_menu, "Import Chats…", lambda: self.import_chats(), "Ctrl+Shift+I",
                     name="import_action")  # fmt: skip
        self._action(file_menu, "Export Chat…", lambda: self.export_chat(), "Ctrl+Shift+E",
                     name="export_action")  # fmt: skip
        self._action(file_menu, "Export All Chats…", lambda: self.export_all(),
                     name="export_all_action")  # fmt: skip
        file_menu.addSeparator()
        self._action(file_menu, "Close Window", self.close, std.Close)
        edit_menu = bar.addMenu("&Edit")
        # Undo: the focused field's own undo, else the last chat moved to the trash.
        self._action(edit_menu, "Undo", self.undo, std.Undo, name="undo_action")
        for text, key, slot in (
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
        self.stop_action.setShortcuts([QKeySequence("Ctrl+."), QKeySequence(Qt.Key.Key_Escape)])
        self.stop_action.setEnabled(False)  # only while this chat's answer is being written
        self._action(
            chat_menu, "Regenerate", self.regenerate_last, "Ctrl+R", name="regenerate_action"
        )
        self._action(chat_menu, "Think Before Answering",
                     lambda: self.composer.thinking_button.click(), "Ctrl+Shift+T",
                     name="thinking_action")  # fmt: skip
        self.thinking_action.setCheckable(True)
        chat_menu.addSeparator()
        self._action(chat_menu, "Chat Settings…", self.open_chat_settings, "Ctrl+Shift+,",
                     name="chat_settings_action")  # fmt: skip
        self._action(chat_menu, "Assistants…", self.open_assistants, name="assistants_action")
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
        self._action(view_menu, "Trash…", self.open_trash, "Ctrl+Shift+Backspace",
                     name="trash_action")  # fmt: skip
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
        self._action(help_menu, "Keyboard Shortcuts", self.show_shortcuts, "Ctrl+/",
                     name="shortcuts_action")  # fmt: skip
        self._action(help_menu, "Save Diagnostics…", lambda: self.save_diagnostics(),
                     name="diagnostics_action")  # fmt: skip

    def _edit(self, operation: str) -> None:
        widget = QApplication.focusWidget()
        if widget is not None and hasattr(widget, operation):
            getattr(widget, operation)()

    def undo(self) -> None:
        widget = QApplication.focusWidget()
        if (
            isinstance(widget, QLineEdit)
            and widget.isUndoAvailable()
            or isinstance(widget, QPlainTextEdit)
            and widget.document().isUndoAvailable()
        ):
            widget.undo()
        else:
            self.undo_delete()

    def _fill_assistant_menu(self) -> None:
        self.assistant_menu.clear()
        for preset in self.backend.presets():
            action = self.assistant_menu.addAction(preset.name)
            action.setToolTip(preset.description)
            action.triggered.connect(lambda _=False, name=preset.name: self.new_conversation(name))

    # --- conversations ---------------------------------------------------------------------
    def new_conversation(self, preset: str = "") -> None:
        conversation_id = self.backend.new_conversation(preset)
        self.sidebar.refresh(select=conversation_id)
        self.open_conversation(conversation_id)
        self.composer.input.setFocus()

    def open_conversation(self, conversation_id: str) -> None:
        if conversation_id == self.conversation_id and self.chat.conversation_id == conversation_id:
            return
        self.conversation_id = conversation_id
        messages = self.backend.messages(conversation_id)
        self.chat.show_conversation(conversation_id, messages)
        self.composer.set_generating(self.backend.is_generating(conversation_id))
        self.stop_action.setEnabled(self.composer.generating)
        self.composer.clear_problems()
        self._sync_chat_controls()
        last = next((m.stats for m in reversed(messages) if m.stats is not None), None)
        self._context_used = last.context_tokens if last is not None else 0
        self.status_line.set_context(self._context_used)

    def _sync_chat_controls(self) -> None:
        """The header's assistant and the thinking toggle follow the open chat."""
        if not self.conversation_id:
            return
        self.header.show_chat(self.conversation_id)
        thinking = self.backend.chat_settings(self.conversation_id).options.get("thinking")
        if thinking is None:
            thinking = bool(self.backend.setting("thinking", False))
        self.composer.set_thinking(thinking)
        self.thinking_action.setChecked(thinking)

    def set_thinking(self, on: bool) -> None:
        """The thinking toggle beside the composer: this chat's choice from now on."""
        if self.conversation_id:
            self.backend.set_chat_settings(self.conversation_id, thinking=on)
        self.thinking_action.setChecked(on)

    def on_deleted(self, conversation_id: str, neighbour: str) -> None:
        """A chat went to the trash: never leave it open (the next message would go there)."""
        title = next((t.title for t in self.backend.trash() if t.id == conversation_id), "")
        if conversation_id == self.conversation_id:
            self.conversation_id = ""
            if neighbour:
                self.sidebar.refresh(select=neighbour)
            else:
                self.new_conversation()
        shown = " ".join(title.split())
        shown = f"“{shown[:40]}…”" if len(shown) > 40 else (f"“{shown}”" if shown else "The chat")
        shortcut = QKeySequence(QKeySequence.StandardKey.Undo).toString(
            QKeySequence.SequenceFormat.NativeText
        )
        self.toast.show_message(f"{shown} moved to the trash.", "Undo", shortcut)
        self.undo_action.setText("Undo Move to Trash")

    def undo_delete(self) -> None:
        restored = self.backend.undo_delete()
        self.toast.dismiss()
        self.undo_action.setText("Undo")
        if restored:
            self.sidebar.refresh(select=restored)
            self.status_line.show_notice("Restored the chat from the trash.")

    def open_trash(self) -> TrashDialog:
        dialog = TrashDialog(self.backend, self)
        dialog.restored.connect(lambda _: self.sidebar.refresh())
        dialog.open()
        return dialog

    def switch_version(self, message_id: str, step: int) -> None:
        self.backend.switch_version(self.conversation_id, message_id, step)

    def open_chat_settings(self) -> ChatSettingsDialog | None:
        if not self.conversation_id:
            return None
        dialog = ChatSettingsDialog(self.backend, self.conversation_id, self)
        dialog.finished.connect(lambda _: self._sync_chat_controls())
        dialog.open()
        return dialog

    def open_assistants(self) -> AssistantsDialog:
        dialog = AssistantsDialog(self.backend, self)
        dialog.finished.connect(lambda _: self._sync_chat_controls())
        dialog.open()
        return dialog

    # --- export, import, diagnostics -------------------------------------------------------
    def export_chat(self, path: str | None = None, fmt: str | None = None,
                    with_media: bool = False) -> None:  # fmt: skip
        """File ▸ Export Chat…: format and media chosen in a dialog, then where to save."""
        if not self.conversation_id:
            return
        if fmt is None:
            choice = ExportDialog(self)
            if not choice.exec():
                return
            fmt, with_media = choice.format(), choice.with_media()
        if path is None:
            summaries = self.backend.conversations()
            title = next((c.title for c in summaries if c.id == self.conversation_id), "")
            suffix = ".md" if fmt == "markdown" else ".json"
            name = (" ".join(title.split())[:60] or "Chat").replace("/", "-") + suffix
            path, _ = QFileDialog.getSaveFileName(self, "Export Chat", name,
                                                  f"{fmt.capitalize()} (*{suffix})")  # fmt: skip
            if not path:
                return
        self._report(lambda: self.backend.export_conversation(
            self.conversation_id, Path(path), fmt, with_media), f"Exported the chat to {path}.")  # fmt: skip

    def export_all(self, path: str | None = None, with_media: bool | None = None) -> None:
        if with_media is None:
            with_media = self._ask_save_with_option(
                QMessageBox.Icon.Question, "Export All Chats",
                "Export every chat to one zip file (JSON, to import again).",
                "Include pictures and recordings",
            )  # fmt: skip
            if with_media is None:
                return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export All Chats", "Gemma Desk chats.zip",
                                                  "Zip archive (*.zip)")  # fmt: skip
            if not path:
                return
        self._report(lambda: self.backend.export_all(Path(path), with_media),
                     "Exported {} chats to " + str(path) + ".")  # fmt: skip

    def _ask_save_with_option(
        self, icon: QMessageBox.Icon, title: str, text: str, option: str
    ) -> bool | None:
        """Save/Cancel with one checkbox: whether it was ticked, or None on Cancel."""
        box = QMessageBox(icon, title, text,
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel,
                          self)  # fmt: skip
        ticked = QCheckBox(option)
        ticked.setAccessibleName(option)
        box.setCheckBox(ticked)
        if box.exec() != QMessageBox.StandardButton.Save:
            return None
        return ticked.isChecked()

    def import_chats(self, paths: list[str] | None = None) -> None:
        if paths is None:
            paths, _ = QFileDialog.getOpenFileNames(self, "Import Chats", "",
                                                    "Chat exports (*.json *.zip)")  # fmt: skip
        for path in paths:
            self._report(lambda path=path: self.backend.import_file(Path(path)), "{}")
        self.sidebar.refresh()

    def save_diagnostics(self, path: str | None = None, include_chat: bool | None = None) -> None:
        """Help ▸ Save Diagnostics…: a zip for a bug report; the open chat only if ticked."""
        if include_chat is None:
            include_chat = self._ask_save_with_option(
                QMessageBox.Icon.Information, "Save Diagnostics",
                "Saves a zip with the app's log, versions, the memory plan, the settings "
                "(without API keys) and the last errors, to attach to a bug report. No message "
                "is included unless you tick the box.",
                "Include the open chat's messages",
            )  # fmt: skip
            if include_chat is None:
                return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save Diagnostics",
                                                  "Gemma Desk diagnostics.zip", "Zip (*.zip)")  # fmt: skip
            if not path:
                return
        chat_id = self.conversation_id if include_chat else ""
        self._report(lambda: self.backend.save_diagnostics(Path(path), chat_id),
                     f"Saved the diagnostics to {path}.")  # fmt: skip

    def _report(self, action, done: str) -> None:
        """Run a file action; say how it went in the status line (an error: in a box)."""
        try:
            result = action()
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Gemma Desk", str(exc))
            return
        self.status_line.show_notice(done.format(result))

    def on_conversation_reset(self, conversation_id: str) -> None:
        if conversation_id == self.conversation_id:
            self.chat.show_conversation(conversation_id, self.backend.messages(conversation_id))

    def on_message_added(self, conversation_id: str, message: MessageView) -> None:
        if conversation_id == self.conversation_id and message.id not in self.chat.widgets:
            self.chat.add_message(message)

    def on_delta(self, conversation_id: str, message_id: str, kind: str, text: str) -> None:
        if conversation_id == self.conversation_id:
            self.chat.append_delta(message_id, kind, text)

    def on_prefill_progress(self, conversation_id: str, message_id: str, progress) -> None:
        if conversation_id == self.conversation_id:
            self.chat.set_prefill(message_id, progress)

    def on_tool(self, conversation_id: str, message_id: str, tool) -> None:
        if conversation_id == self.conversation_id:
            self.chat.add_tool(message_id, tool)

    def on_finished(self, conversation_id: str, message_id: str, final: MessageView) -> None:
        if conversation_id == self.conversation_id:
            self.chat.flush()
            self.chat.finish(message_id, final)
            if final.stats is not None and final.stats.context_tokens:
                self._context_used = final.stats.context_tokens
                self.status_line.set_context(self._context_used, final.stats.context_limit)

    def on_generating(self, conversation_id: str, generating: bool) -> None:
        if conversation_id == self.conversation_id:
            self.composer.set_generating(generating)
            self.stop_action.setEnabled(generating)
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

    def on_input_progress(self, conversation_id: str, view) -> None:
        if conversation_id == self.conversation_id:
            self.transcript_progress.show_progress(view)

    def save_transcript(self, message_id: str, fmt: str) -> None:
        widget = self.chat.widgets.get(message_id)
        name = (widget.message.transcript or {}).get("name", "") if widget else ""
        path = save_transcript(self, self.backend, message_id, fmt, name or "transcript")
        if path is not None:
            self.status_line.show_notice(f"Saved the transcript to {path}.")

    def choose_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Attach a Folder of Source Files")
        if folder:
            self.composer.add_paths([folder])

    def record_meeting(self) -> RecordBar | None:
        """Record mode: the microphone to disk until Stop, then attached to the message."""
        if getattr(self, "record_bar", None) is not None:
            return self.record_bar
        try:
            session = self.backend.meeting_session()
        except NotImplementedError:
            self.status_line.show_notice("Recording meetings needs the app's own backend.")
            return None
        bar = RecordBar(session)
        bar.attachment_ready.connect(self.composer.add_attachment)
        bar.failed.connect(lambda reason: self.composer.reject("Recording", reason))
        bar.closed.connect(lambda: setattr(self, "record_bar", None))
        self.composer.recording_slot.addWidget(bar)
        bar.show()
        self.record_bar = bar
        bar.start()
        return bar

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

    def about(self) -> QMessageBox:
        return about_box.show_about(self)

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
        # Speed and memory are the machine's; the token meter belongs to the open chat.
        self.status_line.set_stats(RunStats(stats.tokens_per_s, 0, 0, stats.memory_bytes))
        if stats.context_limit:
            self.status_line.set_context(self._context_used, stats.context_limit)

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
