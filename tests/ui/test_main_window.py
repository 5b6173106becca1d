"""The window's behaviour over the in-memory backend: streaming, thinking, composer, menus, a11y."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QWidget,
)

from ui.backend import AttachmentView, ModelStatus, ToolCardView
from ui.memory_backend import MemoryBackend


def thinking_replier(text, attachments):
    return [("thinking", "Let me think. "), ("thinking", "Step two."),
            ("tool", ToolCardView("get_time", {"zone": "UTC"}, "12:00", done=True, call_id="c1")),
            ("text", "The **answer** is:\n\n```python\nprint(42)\n```\n")]  # fmt: skip


def long_replier(text, attachments):
    """A long answer: 40 paragraphs, a run-on paragraph, a table and code, word by word."""
    paragraph = "Streaming words with `code`, **bold** and $x^2$ math. " * 6 + "\n\n"
    table = "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * 10 + "\n"
    code = "```python\n" + "print('x')\n" * 50 + "```\n\n"
    body = (
        paragraph * 20
        + table
        + code
        + paragraph.replace("\n\n", " ") * 12
        + "\n\n"
        + paragraph * 20
    )
    return [("text", piece) for piece in body.split(" ") for piece in (piece + " ",)]


def answers(window):
    return [w for w in window.chat.message_widgets() if w.message.role == "assistant"]


def send(qtbot, window, text):
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def test_return_sends_and_shift_return_adds_a_line(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    qtbot.keyClicks(window.composer.input, "line one")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert window.composer.input.toPlainText() == "line one\n"
    assert memory_backend.sent == []
    qtbot.keyClicks(window.composer.input, "line two")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    assert memory_backend.sent[0][1] == "line one\nline two"
    assert window.composer.input.toPlainText() == ""


def test_streamed_answer_appears_and_is_announced(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    send(qtbot, window, "hello")
    qtbot.waitUntil(lambda: bool(answers(window)) and not answers(window)[0].message.streaming)
    assert answers(window)[0].message.text.strip() == "You said: hello"
    assert "You said: hello" in window.chat.last_announcement
    assert answers(window)[0].accessibleDescription().startswith("Gemma answered")


def test_thinking_is_collapsed_and_expandable(qtbot, window_for):
    window = window_for(MemoryBackend(thinking_replier))
    send(qtbot, window, "think")
    qtbot.waitUntil(lambda: bool(answers(window)) and not answers(window)[0].message.streaming)
    section = answers(window)[0].thinking
    assert section.isVisible()
    assert not section.body.isVisible()
    assert section.toggle.text().startswith("Thought for")
    qtbot.mouseClick(section.toggle, Qt.MouseButton.LeftButton)
    assert section.body.isVisible()
    assert "Step two." in section.body.text()
    qtbot.mouseClick(section.toggle, Qt.MouseButton.LeftButton)
    assert not section.body.isVisible()


def test_tool_calls_show_as_cards_and_code_blocks_copy(qtbot, window_for):
    window = window_for(MemoryBackend(thinking_replier))
    send(qtbot, window, "tools")
    qtbot.waitUntil(lambda: bool(answers(window)) and not answers(window)[0].message.streaming)
    answer = answers(window)[0]
    assert len(answer.tool_cards) == 1 and "get_time" in answer.tool_cards[0].title.text()
    [code] = answer.body.code_blocks()
    qtbot.mouseClick(code.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "print(42)"


def test_stop_mid_stream_keeps_the_partial_answer(qtbot, window_for):
    backend = MemoryBackend(long_replier)
    window = window_for(backend)
    send(qtbot, window, "long")
    qtbot.waitUntil(lambda: bool(answers(window)) and len(answers(window)[0].message.text) > 20)
    assert answers(window)[0].stop_button.isVisible()
    qtbot.mouseClick(answers(window)[0].stop_button, Qt.MouseButton.LeftButton)
    assert not backend.is_generating(window.conversation_id)
    answer = answers(window)[0]
    assert not answer.message.streaming and answer.message.stats.stop_reason == "cancelled"
    assert 20 < len(answer.message.text) < len("".join(t for _, t in long_replier("", [])))
    assert not answer.stop_button.isVisible()


def test_updates_are_coalesced_while_streaming(qtbot, window_for):
    backend = MemoryBackend(long_replier, chunk_interval_ms=0)
    window = window_for(backend)
    send(qtbot, window, "long")
    started = time.monotonic()
    qtbot.waitUntil(lambda: not backend.is_generating(window.conversation_id), timeout=60_000)
    elapsed = time.monotonic() - started
    chunks = len(long_replier("", []))
    assert window.chat.flush_count <= elapsed * 31 + 2
    assert window.chat.flush_count < chunks / 5


def run_latency_probe() -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.ui.latency_probe"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_event_loop_latency_stays_under_50ms_while_a_long_answer_streams():
    # A timer asks to run every 10 ms while 17,000 characters of Markdown (paragraphs, a
    # table, a code block, math) stream in word by word; its lateness is the latency.
    # Measured in a process of its own, as the app runs (see tests/ui/latency_probe.py).
    # Best of three probes: another process taking the CPU delays one run by its own
    # schedule, while slow rendering would delay every run.
    worst_per_run = []
    for _ in range(3):
        measured = run_latency_probe()
        delays = measured["delays"]
        assert measured["answer_chars"] > 10_000
        assert len(delays) > 50
        worst_per_run.append(sorted(delays)[-5:])
        if max(delays) < 0.050:
            return
    shown = [[round(d * 1000) for d in worst] for worst in worst_per_run]
    raise AssertionError(f"worst event-loop delays per run {shown} ms, limit 50 ms")


def test_switching_conversations_while_one_generates(qtbot, window_for):
    backend = MemoryBackend(long_replier, chunk_interval_ms=2)
    window = window_for(backend)
    first = window.conversation_id
    send(qtbot, window, "long")
    qtbot.waitUntil(lambda: bool(answers(window)) and len(answers(window)[0].message.text) > 20)
    window.new_action.trigger()
    assert window.conversation_id != first and window.chat.message_widgets() == []
    assert not window.composer.generating
    send(qtbot, window, "second chat")
    assert backend.is_generating(first)
    window.sidebar.refresh(select=first)
    assert window.conversation_id == first
    qtbot.waitUntil(lambda: not backend.is_generating(first), timeout=60_000)
    qtbot.wait(60)
    assert answers(window)[0].message.text == backend.messages(first)[-1].text


def test_regenerate_and_edit_and_resend(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    send(qtbot, window, "one")
    qtbot.waitUntil(lambda: not memory_backend.is_generating(window.conversation_id))
    old_id = answers(window)[0].message.id
    window.regenerate_action.trigger()
    qtbot.waitUntil(lambda: not memory_backend.is_generating(window.conversation_id))
    assert answers(window)[0].message.id != old_id and len(window.chat.message_widgets()) == 2
    user = window.chat.message_widgets()[0]
    user.begin_edit()
    user.editor.setPlainText("two")
    user._submit_edit()
    qtbot.waitUntil(lambda: not memory_backend.is_generating(window.conversation_id))
    texts = [w.message.text.strip() for w in window.chat.message_widgets()]
    assert texts == ["two", "You said: two"]


def test_chips_are_removable_before_sending(qtbot, window_for, memory_backend, png_file, wav_file):
    window = window_for(memory_backend)
    window.composer.add_paths([png_file, wav_file])
    qtbot.waitUntil(lambda: len(window.composer.chips) == 2)
    chip = next(c for c in window.composer.chips if c.attachment.kind == "audio")
    qtbot.mouseClick(chip.remove_button, Qt.MouseButton.LeftButton)
    send(qtbot, window, "see")
    assert [a.kind for a in memory_backend.sent[0][2]] == ["image"]
    assert window.composer.chips == []


def test_vision_budget_goes_with_the_message(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    assert [window.composer.budget.itemData(i) for i in range(window.composer.budget.count())] == [
        70,
        140,
        280,
        560,
        1120,
    ]
    window.composer.budget.setCurrentIndex(4)
    send(qtbot, window, "detail")
    assert memory_backend.sent[0][3] == 1120


def test_pasting_an_image_attaches_it(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.red)
    mime = QMimeData()
    mime.setImageData(image)
    QGuiApplication.clipboard().setMimeData(mime)
    window.composer.input.setFocus()
    window.composer.input.paste()
    qtbot.waitUntil(lambda: len(window.composer.chips) == 1)
    assert window.composer.chips[0].attachment.kind == "image"
    assert window.composer.chips[0].attachment.width == 40


def test_a_rejected_file_shows_the_reason(qtbot, window_for, memory_backend, text_file):
    window = window_for(memory_backend)
    window.composer.add_paths([text_file])
    qtbot.waitUntil(lambda: window.composer.pending_ingests == 0)
    assert not window.composer.rejection_label.isHidden()
    assert "notes.txt" in window.composer.rejection_label.text()
    assert window.composer.chips == []


def test_hold_to_talk_hotkey_records_while_held(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    qtbot.keyPress(window.composer.input, Qt.Key.Key_F5)
    assert window.push_to_talk.recording
    qtbot.wait(500)
    assert window.push_to_talk.bar.meter.level > 0
    qtbot.keyRelease(window.composer.input, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: len(window.composer.chips) == 1)
    assert window.composer.chips[0].attachment.kind == "audio"


def test_dictation_puts_the_transcript_in_the_composer(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    window.dictation_action.trigger()
    window.composer.mic_button.pressed.emit()
    qtbot.wait(450)
    window.composer.mic_button.released.emit()
    qtbot.waitUntil(lambda: "transcript" in window.composer.input.toPlainText())
    assert window.composer.chips == []


def test_recording_stops_by_itself_at_the_limit(qtbot, window_for, memory_backend):
    memory_backend._mic_limit = 0.4
    window = window_for(memory_backend)
    window.composer.mic_button.pressed.emit()
    window.composer.mic_button.released.emit()  # a tap latches recording on
    qtbot.waitUntil(lambda: len(window.composer.chips) == 1, timeout=5000)
    assert not window.push_to_talk.recording


def test_webcam_dialog_records_retakes_and_attaches(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    dialog = window.open_webcam()
    qtbot.waitUntil(lambda: dialog.frames_shown > 2)
    dialog.toggle_recording()
    qtbot.wait(400)
    dialog.toggle_recording()
    qtbot.waitUntil(lambda: dialog.clip is not None)
    dialog.retake()
    assert dialog.clip is None and not dialog.attach_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.frames_shown > 6)
    dialog.toggle_recording()
    qtbot.wait(300)
    dialog.toggle_recording()
    qtbot.waitUntil(lambda: dialog.clip is not None)
    dialog.attach()
    qtbot.waitUntil(lambda: len(window.composer.chips) == 1)
    assert window.composer.chips[0].attachment.kind == "video"


def _form_labels(form) -> list[str]:
    from PySide6.QtWidgets import QFormLayout

    items = (form.itemAt(row, QFormLayout.ItemRole.LabelRole) for row in range(form.rowCount()))
    return [item.widget().text() for item in items if item is not None]


def test_first_run_screen_without_a_model_and_choosing_a_folder_loads_it(qtbot, window_for):
    backend = MemoryBackend(model=ModelStatus())
    window = window_for(backend)
    assert window.pages.currentWidget() is window.first_run
    assert "Download" in window.first_run.download_button.text()
    assert "Faster answers:" not in _form_labels(window.first_run.facts)
    backend.offer.assistant_repo = "google/gemma-4-12b-assistant"
    window.first_run.refresh()
    assert "Faster answers:" in _form_labels(window.first_run.facts)
    window.first_run.model_chosen.emit("/models/tiny")
    assert backend.model_status().state == "ready"
    assert window.pages.currentWidget() is window.chat_page
    assert "tiny" in window.status_line.model_label.text()


def test_sidebar_search_rename_and_delete(qtbot, window_for, memory_backend, monkeypatch):
    window = window_for(memory_backend)
    send(qtbot, window, "about cats")
    qtbot.waitUntil(lambda: not memory_backend.is_generating(window.conversation_id))
    window.new_action.trigger()
    send(qtbot, window, "about dogs")
    qtbot.waitUntil(lambda: not memory_backend.is_generating(window.conversation_id))
    assert window.sidebar.list.count() == 2
    window.sidebar.search.setText("cats")
    qtbot.waitUntil(lambda: window.sidebar.list.count() == 1)
    cats = window.sidebar.list.item(0).data(Qt.ItemDataRole.UserRole)
    window.sidebar.rename(cats, "Feline facts")
    assert window.sidebar.list.item(0).text() == "Feline facts"
    window.sidebar.search.clear()
    qtbot.waitUntil(lambda: window.sidebar.list.count() == 2)
    window.sidebar.delete(cats, confirm=False)
    assert [s.title for s in memory_backend.conversations()] == ["about dogs"]


def test_menu_shortcuts_follow_mac_conventions(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    assert window.new_action.shortcut() == QKeySequence(QKeySequence.StandardKey.New)
    assert window.settings_action.menuRole() == QAction.MenuRole.PreferencesRole
    assert QKeySequence("Ctrl+,") in window.settings_action.shortcuts()
    assert window.stop_action.shortcut() == QKeySequence("Ctrl+.")
    assert window.copy_last_action.shortcut() == QKeySequence("Ctrl+Shift+C")
    assert window.quit_action.menuRole() == QAction.MenuRole.QuitRole


def test_copy_last_answer(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    send(qtbot, window, "copy me")
    qtbot.waitUntil(lambda: not memory_backend.is_generating(window.conversation_id))
    window.copy_last_action.trigger()
    assert QGuiApplication.clipboard().text().strip() == "You said: copy me"


def _unnamed_controls(root: QWidget) -> list[str]:
    kinds = (
        QAbstractButton,
        QLineEdit,
        QComboBox,
        QPlainTextEdit,
        QAbstractSpinBox,
        QListWidget,
        QProgressBar,
    )
    missing = []
    for widget in root.findChildren(QWidget):
        named = widget.accessibleName() or getattr(widget, "text", lambda: "")()
        if isinstance(widget, kinds) and widget.isVisibleTo(root) and not named:
            missing.append(
                f"{type(widget).__name__} {widget.objectName()} in {type(widget.parent()).__name__}"
            )
    return missing


def test_every_control_has_an_accessible_name(qtbot, window_for):
    window = window_for(MemoryBackend(thinking_replier))
    send(qtbot, window, "a11y")
    qtbot.waitUntil(lambda: bool(answers(window)) and not answers(window)[0].message.streaming)
    window.composer.add_attachment(
        AttachmentView("audio", "a.wav", duration_s=2.0, waveform=[0.5] * 10)
    )
    assert _unnamed_controls(window) == []
    settings = window.open_settings()
    assert _unnamed_controls(settings) == []
    dialog = window.open_webcam()
    assert _unnamed_controls(dialog) == []
    model = window.open_model_dialog()
    assert _unnamed_controls(model) == []


def test_settings_dialog_applies_changed_values(qtbot, window_for, memory_backend):
    window = window_for(memory_backend)
    dialog = window.open_settings()
    dialog.editors["thinking"].setChecked(True)
    dialog.editors["max_tokens"].setValue(123)
    dialog.accept()
    assert memory_backend.settings_values["thinking"] is True
    assert memory_backend.settings_values["max_tokens"] == 123


def test_light_and_dark_palettes_differ(qapp):
    from ui import theme

    light = theme.apply(qapp, dark=False)
    dark = theme.apply(qapp, dark=True)
    assert light.colors["window"] != dark.colors["window"]
    assert qapp.palette().window().color().name() == dark.colors["window"]
    theme.apply(qapp, dark=False)


def test_the_model_dialog_offers_the_models_on_this_mac(qtbot, window_for, memory_backend):
    listed = [("mlx-community/gemma-4-12b-it-4bit", "/cache/snapshots/abc")]
    memory_backend.available_models = lambda: listed
    window = window_for(memory_backend)
    dialog = window.open_model_dialog()
    assert dialog.models.isVisibleTo(dialog)
    assert dialog.models.itemText(1) == "mlx-community/gemma-4-12b-it-4bit"
    dialog.models.activated.emit(1)
    assert dialog.path.text() == "/cache/snapshots/abc"


def test_claude_desktops_mcp_servers_can_be_imported_in_the_settings(
    qtbot, window_for, memory_backend
):
    from ui.backend import SettingField

    memory_backend.settings_values["mcp_servers"] = ({"name": "notes", "command": ["x"]},)
    fields = memory_backend.setting_fields
    memory_backend.setting_fields = lambda: [
        *fields(),
        SettingField(
            "mcp_servers", "MCP servers", memory_backend.settings_values["mcp_servers"], "json",
            section="Tools",
        ),
    ]  # fmt: skip
    asked = []

    def claude(existing):
        asked.append(existing)
        return [{"name": "files", "command": ["npx", "server-filesystem"], "trusted": False}]

    memory_backend.claude_desktop_servers = claude
    window = window_for(memory_backend)
    dialog = window.open_settings()
    dialog.import_claude_desktop()
    assert asked == [["notes"]]
    assert "files" in dialog.error.text()
    dialog.accept()
    names = [s["name"] for s in memory_backend.settings_values["mcp_servers"]]
    assert names == ["notes", "files"]
