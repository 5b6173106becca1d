"""Settings that drive the app: MCP servers' tools in the chat, dictation mode, the dialog."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QWidget,
)

from app.settings import SettingsStore
from tests.doubles import script_turns, scripted_factory

MCP_SERVER = Path(__file__).parents[1] / "app" / "mcp_test_server.py"


def calc_server(name: str = "calc", **options) -> dict:
    return {"name": name, "command": [sys.executable, str(MCP_SERVER)], **options}


@pytest.fixture
def backend_for(qtbot, tmp_path: Path):
    """AppBackends on one data folder; `model` loads the tiny checkpoint (memory limits off)."""
    from ui.app_backend import AppBackend

    made = []

    def build(model: Path | None = None):
        backend = AppBackend(data_dir=str(tmp_path / "data"), engine_factory=scripted_factory())
        backend.session.settings_store.update(max_tokens=96, seed=0)
        made.append(backend)
        if model is not None:
            backend.load_model(str(model))
            qtbot.waitUntil(lambda: backend.model_status().state == "ready", timeout=60_000)
        return backend

    yield build
    for backend in made:
        backend.shutdown()


def send_text(qtbot, window, text: str) -> None:
    qtbot.waitUntil(lambda: not window.composer.generating, timeout=60_000)  # else not sent
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def wait_for_tool_result(qtbot, backend, conversation_id: str):
    def card():
        for message in backend.messages(conversation_id):
            for tool in message.tools:
                if tool.done:
                    return tool
        return None

    qtbot.waitUntil(lambda: card() is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not backend.is_generating(conversation_id), timeout=60_000)
    return card()


# --- MCP servers -------------------------------------------------------------------------------


def test_tools_of_the_mcp_servers_in_settings_are_offered_to_the_chat(
    qtbot, backend_for, tiny_checkpoint
):
    backend = backend_for(tiny_checkpoint)
    backend.apply_settings({"mcp_servers": [calc_server(trusted=True)]})
    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    assert set(backend.session.controller.tools.tools) == {"add", "word_count"}
    assert backend.session.mcp_status["calc"][0] == "ready"


def test_the_model_calls_an_mcp_tool_and_the_chat_shows_its_result(
    qtbot, window_for, backend_for, tiny_checkpoint
):
    backend = backend_for(tiny_checkpoint)
    backend.apply_settings({"mcp_servers": [calc_server(trusted=True)]})
    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    window = window_for(backend)
    script_turns(backend.session.service, [("tool", "add", {"a": 2, "b": 3}), "The sum is 5"])

    send_text(qtbot, window, "Add 2 and 3")
    card = wait_for_tool_result(qtbot, backend, window.conversation_id)

    assert (card.name, card.arguments, card.result, card.error) == (
        "add",
        {"a": 2, "b": 3},
        5,
        None,
    )
    assert backend.messages(window.conversation_id)[-1].text == "The sum is 5"


def test_an_untrusted_servers_call_runs_once_the_user_allows_it(
    qtbot, window_for, backend_for, tiny_checkpoint
):
    backend = backend_for(tiny_checkpoint)
    backend.apply_settings({"mcp_servers": [calc_server()]})
    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    window = window_for(backend)
    script_turns(backend.session.service, [("tool", "add", {"a": 4, "b": 5}), "Nine"])

    send_text(qtbot, window, "Add 4 and 5")
    qtbot.waitUntil(lambda: bool(window._approval_boxes), timeout=60_000)
    [box] = window._approval_boxes.values()
    assert "add" in box.text() and "calc" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    card = wait_for_tool_result(qtbot, backend, window.conversation_id)

    assert card.result == 9 and card.error is None


def test_always_allow_this_tool_is_remembered_and_not_asked_again(
    qtbot, window_for, backend_for, tiny_checkpoint
):
    backend = backend_for(tiny_checkpoint)
    backend.apply_settings({"mcp_servers": [calc_server()]})
    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    window = window_for(backend)
    script_turns(
        backend.session.service,
        [("tool", "add", {"a": 4, "b": 5}), "Nine", ("tool", "add", {"a": 1, "b": 1}), "Two"],
    )

    send_text(qtbot, window, "Add 4 and 5")
    qtbot.waitUntil(lambda: bool(window._approval_boxes), timeout=60_000)
    [box] = window._approval_boxes.values()
    assert '{"a": 4, "b": 5}' in box.text()  # the arguments are shown
    box.button(QMessageBox.StandardButton.YesToAll).click()
    assert wait_for_tool_result(qtbot, backend, window.conversation_id).result == 9
    assert backend.session.settings.mcp_allowed_tools == ("calc/add",)

    send_text(qtbot, window, "Add 1 and 1")
    qtbot.waitUntil(
        lambda: backend.messages(window.conversation_id)[-1].text == "Two", timeout=60_000
    )
    assert not window._approval_boxes
    cards = [t for m in backend.messages(window.conversation_id) for t in m.tools]
    assert [c.result for c in cards] == [9, 2]


def test_an_untrusted_servers_call_is_refused_when_the_user_declines(
    qtbot, window_for, backend_for, tiny_checkpoint
):
    backend = backend_for(tiny_checkpoint)
    backend.apply_settings({"mcp_servers": [calc_server()]})
    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    window = window_for(backend)
    script_turns(backend.session.service, [("tool", "add", {"a": 4, "b": 5}), "Declined"])

    send_text(qtbot, window, "Add 4 and 5")
    qtbot.waitUntil(lambda: bool(window._approval_boxes), timeout=60_000)
    [box] = window._approval_boxes.values()
    box.button(QMessageBox.StandardButton.No).click()
    card = wait_for_tool_result(qtbot, backend, window.conversation_id)

    assert card.result is None and "declined" in card.error


def test_an_mcp_server_that_cannot_start_is_reported_and_the_others_still_work(
    qtbot, window_for, backend_for
):
    backend = backend_for()
    window = window_for(backend)
    notices = []
    backend.notice.connect(notices.append)
    broken = {"name": "broken", "command": [str(Path(__file__).parent / "no-such-program")]}
    backend.apply_settings({"mcp_servers": [broken, calc_server(trusted=True)]})

    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    assert backend.session.mcp_status["broken"][0] == "failed"
    assert any("broken" in n and "failed" in n for n in notices)
    assert window.isVisible()


def test_removing_the_mcp_servers_from_settings_withdraws_their_tools(qtbot, backend_for):
    backend = backend_for()
    backend.apply_settings({"mcp_servers": [calc_server(trusted=True)]})
    qtbot.waitUntil(lambda: backend.session.tool_names == ("add", "word_count"), timeout=60_000)
    backend.apply_settings({"mcp_servers": []})
    assert backend.session.tool_names == () and backend.session.controller.tools is None


# --- dictation mode --------------------------------------------------------------------------


def test_the_dictation_menu_toggle_is_saved_in_settings(qtbot, window_for, backend_for):
    backend = backend_for()
    window = window_for(backend)
    window.dictation_action.trigger()
    assert window.push_to_talk.dictation is True
    assert SettingsStore(backend.session.storage.db).settings.dictation_mode is True


def test_a_saved_dictation_mode_is_on_when_the_window_opens(qtbot, window_for, backend_for):
    backend_for().apply_settings({"dictation_mode": True})
    window = window_for(backend_for())  # a new start on the same data folder
    assert window.dictation_action.isChecked()
    assert window.push_to_talk.dictation is True


def test_dictation_mode_set_in_the_settings_dialog_reaches_the_menu(qtbot, window_for, backend_for):
    window = window_for(backend_for())
    dialog = window.open_settings()
    dialog.editors["dictation_mode"].setChecked(True)
    dialog.accept()
    assert window.dictation_action.isChecked() and window.push_to_talk.dictation is True


# --- the settings dialog -----------------------------------------------------------------------


def test_the_settings_dialog_edits_backend_and_mcp_servers(qtbot, window_for, backend_for):
    backend = backend_for()
    window = window_for(backend)
    dialog = window.open_settings()
    assert not dialog.editors["remote_url"].isEnabled()  # only for a remote backend
    combo = dialog.editors["backend"]
    combo.setCurrentIndex(combo.findData("remote"))
    assert dialog.editors["remote_url"].isEnabled()
    dialog.editors["remote_url"].setText("http://gpu-box:8000/v1")
    dialog.editors["remote_model"].setText("google/gemma-4-12b-it")
    dialog.editors["mcp_servers"].setPlainText('[{"name": "web", "url": "http://127.0.0.1:9/mcp"}]')
    changed = dialog.changed()
    assert changed["backend"] == "remote" and changed["remote_url"] == "http://gpu-box:8000/v1"
    assert changed["mcp_servers"] == ({"name": "web", "url": "http://127.0.0.1:9/mcp"},)
    assert dialog.editors["remote_api_key"].echoMode() != QLineEdit.EchoMode.Normal


def test_the_settings_dialog_refuses_bad_mcp_json_and_names_the_setting(
    qtbot, window_for, backend_for
):
    backend = backend_for()
    dialog = window_for(backend).open_settings()
    dialog.editors["mcp_servers"].setPlainText('[{"name": "web", "url": ')
    dialog.accept()
    assert "MCP servers" in dialog.error.text() and "not valid JSON" in dialog.error.text()
    assert dialog.isVisible() and backend.session.settings.mcp_servers == ()

    dialog.editors["mcp_servers"].setPlainText('[{"name": "web"}]')
    dialog.accept()
    assert "mcp_servers" in dialog.error.text() and "command or a URL" in dialog.error.text()
    assert backend.session.settings.mcp_servers == ()


def test_every_settings_control_has_an_accessible_name(qtbot, window_for, backend_for):
    dialog = window_for(backend_for()).open_settings()
    kinds = (QAbstractButton, QLineEdit, QComboBox, QPlainTextEdit, QAbstractSpinBox)
    unnamed = [
        f"{type(w).__name__} under {type(w.parent()).__name__}"
        for w in dialog.findChildren(QWidget)  # every tab, shown or not
        if isinstance(w, kinds)
        and not isinstance(w.parent(), QAbstractSpinBox)  # a spin box's own text field
        and not (w.accessibleName() or getattr(w, "text", str)())
    ]
    assert unnamed == []
    for key in ("backend", "remote_url", "remote_model", "remote_api_key", "mcp_servers"):
        assert dialog.editors[key].accessibleName()
    assert dialog.editors["dictation_mode"].accessibleName()
