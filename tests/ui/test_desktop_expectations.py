"""What a Mac user expects of the window, over the real app layer (fake engine): nothing lost
on delete, trash and undo, export and import, versions, assistants, thinking and stop,
devices, the small things, accessibility (Qt's accessibility tree) and diagnostics."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QKeySequence
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox, QWidget

from ui.backend import AttachmentView, MessageView
from ui.memory_backend import MemoryBackend


def send(qtbot, window, text):
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def wait_idle(qtbot, window, backend):
    """Until the answer is complete in the store and on screen (its signals arrive queued)."""
    qtbot.waitUntil(lambda: not backend.is_generating(window.conversation_id), timeout=20_000)
    qtbot.waitUntil(lambda: not any(w.message.streaming for w in answers(window)))


def answers(window):
    return [w for w in window.chat.message_widgets() if w.message.role == "assistant"]


def chat(qtbot, window, backend, text):
    send(qtbot, window, text)
    qtbot.waitUntil(lambda: bool(answers(window)), timeout=10_000)
    wait_idle(qtbot, window, backend)


# -- 1. deleting the open chat ---------------------------------------------------------------


def test_delete_open_chat_then_type_and_send_writes_nothing_to_the_trashed_one(
    qtbot, window_for, fake_app_backend, monkeypatch
):
    backend = fake_app_backend
    store = backend.session.storage.conversations
    window = window_for(backend)
    chat(qtbot, window, backend, "first chat")
    window.new_action.trigger()
    chat(qtbot, window, backend, "second chat")
    doomed = window.conversation_id
    before = len(store.messages(doomed, include_superseded=True))
    # The user's steps: select the chat, press Delete, confirm, type, send.
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.sidebar.list.setFocus()
    [delete_key] = [a for a in window.sidebar.list.actions() if a.text() == "Delete"]
    assert delete_key.shortcut() == QKeySequence(QKeySequence.StandardKey.Delete)
    delete_key.trigger()  # the Delete key in the list
    assert store.get_conversation(int(doomed)).in_trash
    assert window.conversation_id and window.conversation_id != doomed
    send(qtbot, window, "where does this go?")
    wait_idle(qtbot, window, backend)
    assert len(store.messages(int(doomed), include_superseded=True)) == before
    opened = store.messages(int(window.conversation_id))
    assert opened[-2].text == "where does this go?"


def test_deleting_the_only_chat_opens_a_new_one(qtbot, window_for, fake_app_backend):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "only chat")
    only = window.conversation_id
    window.sidebar.delete(only, confirm=False)
    assert window.conversation_id not in ("", only)
    assert window.chat.message_widgets() == []


# -- 2. undo and the trash -------------------------------------------------------------------


def test_undo_brings_the_deleted_chat_back_from_the_toast_and_the_shortcut(
    qtbot, window_for, fake_app_backend
):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "keep me")
    kept = window.conversation_id
    window.sidebar.delete(kept, confirm=False)
    assert window.toast.isVisible() and "moved to the trash" in window.toast.label.text()
    qtbot.mouseClick(window.toast.button, Qt.MouseButton.LeftButton)
    assert kept in [s.id for s in fake_app_backend.conversations()]
    assert window.sidebar.current_id() == kept
    window.sidebar.delete(kept, confirm=False)
    assert window.undo_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)
    window.sidebar.list.setFocus()
    window.undo_action.trigger()  # ⌘Z outside a text field
    assert kept in [s.id for s in fake_app_backend.conversations()]


def test_the_trash_dialog_restores_and_empties(qtbot, window_for, fake_app_backend, monkeypatch):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "one")
    first = window.conversation_id
    window.new_action.trigger()
    chat(qtbot, window, fake_app_backend, "two")
    second = window.conversation_id
    window.sidebar.delete(first, confirm=False)
    window.sidebar.delete(second, confirm=False)
    dialog = window.open_trash()
    assert dialog.list.count() == 2 and "30 days left" in dialog.list.item(0).text()
    dialog.list.setCurrentRow(0)
    dialog.restore()
    assert dialog.list.count() == 1
    assert second in [s.id for s in fake_app_backend.conversations()]
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Yes)
    dialog.empty()
    assert dialog.list.count() == 0 and fake_app_backend.trash() == []


# -- 3. export and import ----------------------------------------------------------------------


def test_export_chat_and_all_then_import(qtbot, window_for, fake_app_backend, tmp_path: Path):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "export me")
    window.export_chat(str(tmp_path / "chat.md"), "markdown")
    assert "export me" in (tmp_path / "chat.md").read_text()
    window.export_chat(str(tmp_path / "chat.json"), "json", with_media=True)
    assert json.loads((tmp_path / "chat.json").read_text())["format"] == "gemma-desk.conversation"
    window.export_all(str(tmp_path / "all.zip"), with_media=False)
    assert len(zipfile.ZipFile(tmp_path / "all.zip").namelist()) == 1
    window.import_chats([str(tmp_path / "chat.json"), str(tmp_path / "all.zip")])
    assert "Imported 1 chat" in window.status_line.notice_label.text()
    assert window.sidebar.list.count() == 3


# -- 4. versions -----------------------------------------------------------------------------


def test_regenerate_and_edit_keep_versions_browsable(qtbot, window_for, fake_app_backend):
    backend = fake_app_backend
    window = window_for(backend)
    backend.engines[0].script(["first answer", "second answer", "to the edit"])
    chat(qtbot, window, backend, "question")
    window.regenerate_action.trigger()
    qtbot.waitUntil(lambda: answers(window) and "second" in answers(window)[0].message.text)
    wait_idle(qtbot, window, backend)
    answer = answers(window)[0]
    assert answer.versions.isVisible() and answer.version_label.text() == "2/2"
    qtbot.mouseClick(answer.previous_version, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: answers(window)[0].message.text.strip() == "first answer")
    assert answers(window)[0].version_label.text() == "1/2"
    user = window.chat.message_widgets()[0]
    user.begin_edit()
    user.editor.setPlainText("edited question")
    user._submit_edit()
    qtbot.waitUntil(lambda: "to the edit" in answers(window)[0].message.text, timeout=10_000)
    wait_idle(qtbot, window, backend)
    user = window.chat.message_widgets()[0]
    assert user.version_label.text() == "2/2"
    qtbot.mouseClick(user.previous_version, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.chat.message_widgets()[0].message.text == "question")
    assert answers(window)[0].message.text.strip() == "first answer"  # the old branch, whole


# -- 5. assistants and a chat's own settings ---------------------------------------------------


def test_a_chat_started_with_an_assistant_uses_its_prompt(qtbot, window_for, fake_app_backend):
    window = window_for(fake_app_backend)
    [action] = [a for a in window.assistant_menu.actions() if a.text() == "Code reviewer"]
    action.trigger()
    assert window.header.combo.currentText() == "Code reviewer"
    assert window.composer.thinking_button.isChecked()  # the reviewer thinks first
    chat(qtbot, window, fake_app_backend, "def f(): pass")
    request = fake_app_backend.engines[0].requests[-1]
    assert "code reviewer" in request["messages"][0]["content"]
    assert request["options"].enable_thinking and request["options"].temperature == 0.2


def test_chat_settings_set_this_chats_system_prompt_and_save_an_assistant(
    qtbot, window_for, fake_app_backend
):
    window = window_for(fake_app_backend)
    dialog = window.open_chat_settings()
    dialog.editor.prompt.setPlainText("Answer in French.")
    dialog.save_as_assistant("French")
    dialog.accept()
    assert window.header.combo.currentText() == "French"
    chat(qtbot, window, fake_app_backend, "hello")
    assert fake_app_backend.engines[0].requests[-1]["messages"][0]["content"] == "Answer in French."
    assert "French" in [p.name for p in fake_app_backend.presets()]


# -- 6. thinking, stop, the stopped mark, thinking time after a reload --------------------------


def test_thinking_toggle_escape_stops_and_a_stopped_answer_is_marked(
    qtbot, window_for, fake_app_backend
):
    backend = fake_app_backend
    window = window_for(backend)
    qtbot.mouseClick(window.composer.thinking_button, Qt.MouseButton.LeftButton)
    assert backend.chat_settings(window.conversation_id).options["thinking"] is True
    backend.engines[0].script([("forever", "word")])
    send(qtbot, window, "go on")
    qtbot.waitUntil(lambda: window.stop_action.isEnabled() and bool(answers(window)))
    qtbot.waitUntil(lambda: bool(answers(window)[0].message.text))  # it has begun
    assert QKeySequence(Qt.Key.Key_Escape) in window.stop_action.shortcuts()
    window.stop_action.trigger()  # Esc
    wait_idle(qtbot, window, backend)
    qtbot.waitUntil(lambda: answers(window)[0].stopped_label.isVisible())
    assert backend.engines[0].requests[-1]["options"].enable_thinking
    assert "stopped" in answers(window)[0].accessibleName()


def test_thought_for_survives_a_reload(qtbot, window_for, tmp_path: Path):
    from tests.doubles import fake_factory
    from ui.app_backend import AppBackend

    factory = fake_factory(thinking="Let me think. ", delay=0.05, words=["a ", "b "])
    backend = AppBackend(data_dir=str(tmp_path / "d"), engine_factory=factory)
    try:
        backend.load_model("fake-model")
        qtbot.waitUntil(lambda: backend.model_status().state == "ready")
        window = window_for(backend)
        chat(qtbot, window, backend, "think")
        [reloaded] = [m for m in backend.messages(window.conversation_id) if m.role == "assistant"]
        assert reloaded.thinking_seconds and reloaded.thinking_seconds > 0
        window.chat.show_conversation(window.conversation_id, [reloaded])
        assert answers(window)[0].thinking.toggle.text().startswith("Thought for")
    finally:
        backend.shutdown()


# -- 7. devices ----------------------------------------------------------------------------------


def test_devices_are_listed_by_name_tested_and_remembered(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    dialog = window.open_settings()
    page = dialog.devices
    assert [page.mic.itemText(i) for i in range(page.mic.count())] == [
        "System default", "Demo microphone", "USB headset"]  # fmt: skip
    page.mic.setCurrentIndex(2)
    page.mic_test.setChecked(True)
    qtbot.waitUntil(lambda: page.meter.level > 0, timeout=3000)
    assert "USB headset" in page.mic_note.text()
    page.camera_test.setChecked(True)
    qtbot.waitUntil(lambda: page.frames_shown > 1, timeout=3000)
    dialog.accept()
    assert memory_backend.settings_values["mic_device"] == "USB headset"
    assert page.mic_session is None and page.camera_session is None  # let go


def test_recording_says_which_microphone(qtbot, window_for, memory_backend):
    memory_backend.settings_values["mic_device"] = "USB headset"
    window = window_for(memory_backend)
    window.composer.mic_button.pressed.emit()
    assert "USB headset" in window.push_to_talk.bar.title.text()
    window.push_to_talk.cancel()


def test_the_webcam_dialog_offers_no_attach_without_a_clip(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    dialog = window.open_webcam()
    assert not dialog.attach_button.isVisible()
    dialog._on_finished(AttachmentView("video", "Clip.mp4", duration_s=0.0))
    assert not dialog.attach_button.isVisible() and "Nothing was recorded" in dialog.status.text()


def test_no_microphone_is_said_without_portaudio_codes(monkeypatch):
    from app.capture import sources

    class NoDevice:
        def query_devices(self, device=None, kind=None):
            raise RuntimeError("Error querying device -1")

    monkeypatch.setattr(sources, "import_sounddevice", lambda: NoDevice())
    with pytest.raises(sources.CaptureUnavailable) as caught:
        sources.SoundDeviceSource()
    assert "-1" not in caught.value.reason and "No microphone found" in caught.value.reason


# -- 8. the small things ----------------------------------------------------------------------


def test_a_new_chat_shows_its_own_empty_token_meter(qtbot, window_for, fake_app_backend):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "use some context " * 5)
    assert window.status_line.context_bar.value() > 0
    window.new_action.trigger()
    assert window.status_line.context_bar.value() == 0


def test_composer_problems_do_not_pile_up_and_clear(qtbot, window_for, memory_backend, text_file):
    window = window_for(memory_backend)
    for _ in range(3):
        window.composer.add_paths([text_file])
        qtbot.waitUntil(lambda: window.composer.pending_ingests == 0)
    assert window.composer.rejection_label.text().count("notes.txt") == 1
    qtbot.mouseClick(window.composer.dismiss_button, Qt.MouseButton.LeftButton)
    assert not window.composer.problems.isVisible()


def test_long_multiline_titles_are_one_elided_line(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    memory_backend.rename_conversation(window.conversation_id, "A very long title\n" * 20)
    window.sidebar.refresh()
    item = window.sidebar.list.item(0)
    assert "\n" not in item.text()
    bar = window.sidebar.list.horizontalScrollBar()
    assert window.sidebar.list.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert not bar.isVisible()


def test_settings_show_the_models_own_defaults(qtbot, window_for, memory_backend, monkeypatch):
    from app.settings_form import SettingField

    monkeypatch.setattr(memory_backend, "model_defaults", lambda: {"temperature": 1.0})
    monkeypatch.setattr(memory_backend, "setting_fields", lambda: [SettingField(
        "temperature", "Temperature", None, "optional_float", minimum=0, maximum=2)])  # fmt: skip
    window = window_for(memory_backend)
    editor = window.open_settings().editors["temperature"]
    assert editor.default.isChecked() and editor.spin.value() == 1.0
    assert editor.spin.text() != "0.000"


def test_per_message_stats_show_the_time_to_first_token(qtbot, window_for, fake_app_backend):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "numbers")
    assert "first token" in answers(window)[0].stats_label.text()


def test_the_video_strip_fills_its_card(qtbot):
    from PySide6.QtGui import QImage

    from ui.attachment_views import AttachmentCard

    frame = QImage(320, 240, QImage.Format.Format_RGB32)
    card = AttachmentCard(AttachmentView("video", "clip.mp4", duration_s=3, frames=[frame]))
    qtbot.addWidget(card)
    card.show()
    strip = card.findChildren(QWidget, "FrameStrip")[0]
    assert strip.width() >= 240 and strip.pixmap().width() >= 240


# -- 10. accessibility: Qt's accessibility tree -------------------------------------------------

INTERACTIVE = {
    QAccessible.Role.PushButton, QAccessible.Role.CheckBox, QAccessible.Role.RadioButton,
    QAccessible.Role.ComboBox, QAccessible.Role.EditableText, QAccessible.Role.List,
    QAccessible.Role.SpinBox, QAccessible.Role.ProgressBar, QAccessible.Role.ButtonMenu,
    QAccessible.Role.PageTab, QAccessible.Role.Slider,
}  # fmt: skip


def accessibility_problems(root: QWidget) -> list[str]:
    """Walk Qt's accessibility tree (what VoiceOver reads): every control needs a name, and
    a keyboard path (it takes focus, or it is inside a list/tab the keyboard moves in)."""
    problems = []
    stack = [QAccessible.queryAccessibleInterface(root)]
    while stack:
        node = stack.pop()
        if node is None or not node.isValid():
            continue
        state = node.state()
        if state.invisible or state.offscreen:
            continue
        widget = node.object()
        if node.role() in INTERACTIVE and isinstance(widget, QWidget):
            name = node.text(QAccessible.Text.Name)
            label = f"{type(widget).__name__} '{widget.objectName()}' in {type(widget.parent()).__name__}"
            if not name.strip():
                problems.append(f"no name: {label}")
            # Read-only bars are read by VoiceOver, not tabbed to; a field's clear button is
            # the field's own (Esc, or deleting the text).
            display_only = node.role() == QAccessible.Role.ProgressBar
            in_field = isinstance(widget.parent(), QLineEdit)
            focusable = widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            if widget.isEnabled() and not (focusable or display_only or in_field):
                problems.append(f"no keyboard path: {label} ({name})")
        stack.extend(node.child(i) for i in range(node.childCount()))
    return problems


def test_every_control_has_an_accessible_name_and_a_keyboard_path(
    qtbot, window_for, fake_app_backend
):
    window = window_for(fake_app_backend)
    fake_app_backend.engines[0].script(["one", "two"])
    chat(qtbot, window, fake_app_backend, "a11y")
    window.regenerate_action.trigger()
    wait_idle(qtbot, window, fake_app_backend)
    qtbot.waitUntil(lambda: answers(window)[0].versions.isVisible())
    window.composer.add_attachment(AttachmentView("audio", "a.wav", duration_s=2.0, waveform=[0.5]))
    window.sidebar.delete(window.conversation_id, confirm=False)
    assert window.toast.isVisible()
    assert accessibility_problems(window) == []
    for dialog in (window.open_settings(), window.open_webcam(), window.open_model_dialog(),
                   window.open_trash(), window.open_chat_settings(), window.open_assistants()):  # fmt: skip
        assert accessibility_problems(dialog) == [], type(dialog).__name__
        dialog.close()


def test_every_menu_item_is_listed_with_its_shortcut_in_the_docs(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    gui = (Path(__file__).parents[2] / "docs" / "GUI.md").read_text()
    for menu in window.menuBar().actions():
        for action in menu.menu().actions():
            if action.text() and not action.isSeparator():
                assert action.text().replace("&&", "&") in gui, action.text()


# -- 11. diagnostics ------------------------------------------------------------------------------


def test_save_diagnostics_writes_a_zip_without_the_chat_unless_ticked(
    qtbot, window_for, fake_app_backend, tmp_path: Path
):
    window = window_for(fake_app_backend)
    chat(qtbot, window, fake_app_backend, "secret plans")
    window.save_diagnostics(str(tmp_path / "d.zip"), include_chat=False)
    names = zipfile.ZipFile(tmp_path / "d.zip").namelist()
    assert "versions.json" in names and "conversation.json" not in names
    window.save_diagnostics(str(tmp_path / "d2.zip"), include_chat=True)
    assert "secret plans" in zipfile.ZipFile(tmp_path / "d2.zip").read("conversation.json").decode()


def test_memory_backend_versions_keep_the_old_answer(qtbot, window_for):
    backend = MemoryBackend()
    window = window_for(backend)
    send(qtbot, window, "one")
    wait_idle(qtbot, window, backend)
    window.regenerate_action.trigger()
    wait_idle(qtbot, window, backend)
    answer = answers(window)[0]
    assert answer.version_label.text() == "2/2"
    answer.previous_version.click()
    assert answers(window)[0].version_label.text() == "1/2"
    assert isinstance(answers(window)[0].message, MessageView)
    QApplication.processEvents()


def test_the_file_menu_actions_ask_where_to_save(qtbot, window_for, memory_backend, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from ui import main_window

    asked = []
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: asked.append(a[1]) or ("", "")
    )
    monkeypatch.setattr(main_window.ExportDialog, "exec", lambda self: 1)
    window = window_for(memory_backend)
    window.export_action.trigger()  # triggered(checked) must not become the path
    assert asked == ["Export Chat"]
