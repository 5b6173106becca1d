"""Keep-alive in the window: set in the settings dialog; an idle unload and the reload on the
next message show in the status line; a memory warning is said there too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doubles import fake_factory
from tests.ui.test_app_integration import send_text, wait_idle


@pytest.fixture
def backend(qtbot, tmp_path: Path):
    from ui.app_backend import AppBackend

    made = AppBackend(data_dir=str(tmp_path / "data"), engine_factory=fake_factory())
    made.load_model("/models/gemma")
    qtbot.waitUntil(lambda: made.model_status().state == "ready", timeout=10_000)
    yield made
    made.shutdown()


def test_the_keep_alive_is_edited_in_the_settings_dialog(qtbot, window_for, backend):
    dialog = window_for(backend).open_settings()
    editor = dialog.editors["keep_alive"]
    assert editor.text() == "30m" and editor.accessibleName()
    editor.setText("soon")
    dialog.accept()
    assert "keep_alive" in dialog.error.text() and "30m, 2h" in dialog.error.text()
    editor.setText("2h")
    dialog.accept()
    assert backend.session.settings.keep_alive == "2h"
    assert backend.session.service.keep_alive == 7200


def test_an_idle_unload_and_the_reload_show_in_the_status_line(qtbot, window_for, backend):
    window = window_for(backend)
    label, notice = window.status_line.model_label, window.status_line.notice_label
    backend.apply_settings({"keep_alive": "0.1s"})
    qtbot.waitUntil(lambda: "unloaded" in label.text(), timeout=10_000)
    assert label.text() == "fake · unloaded (loads again with your next message)"
    assert notice.text().startswith("Unloaded fake after 0.1 s idle")
    assert window.pages.currentWidget() is window.chat_page  # no first-run screen
    dialog = window.open_model_dialog()
    assert dialog.state.text().startswith("Unloaded to free memory: fake")
    dialog.reject()

    backend.apply_settings({"keep_alive": "never"})
    send_text(qtbot, window, "Hello again")
    qtbot.waitUntil(lambda: notice.text() == "Loading fake again…", timeout=10_000)
    qtbot.waitUntil(lambda: label.text() == "fake", timeout=10_000)  # ready again
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: bool(backend.messages(window.conversation_id)[-1].text))


def test_a_memory_warning_is_said_in_the_status_line(qtbot, window_for, backend):
    window = window_for(backend)
    backend.session.memory_pressure("warning")
    qtbot.waitUntil(
        lambda: window.status_line.notice_label.text().startswith("Memory is low"), timeout=10_000
    )
    assert backend.model_status().state == "ready"
