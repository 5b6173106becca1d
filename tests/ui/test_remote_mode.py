"""The GUI in remote-backend mode against our own server on 127.0.0.1, as if it were a remote vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.server.runner import ServerThread
from tests.doubles import LOOPBACK_API_KEY, free_port, script_turns


@pytest.fixture
def backend_for(qtbot, tmp_path: Path):
    """An AppBackend on a throw-away data folder, with no model chosen yet."""
    from ui.app_backend import AppBackend

    made = []

    def build():
        backend = AppBackend(data_dir=str(tmp_path / f"data{len(made)}"))
        backend.session.settings_store.update(max_tokens=64)
        made.append(backend)
        return backend

    yield build
    for backend in made:
        backend.shutdown()


def use_remote(qtbot, backend, loopback_server: ServerThread, **changes) -> None:
    backend.apply_settings(
        {
            "backend": "remote",
            "remote_url": loopback_server.url,
            "remote_api_key": LOOPBACK_API_KEY,
            **changes,
        }
    )
    qtbot.waitUntil(lambda: backend.model_status().state in ("ready", "error"), timeout=30_000)


def answers(window):
    return [w for w in window.chat.message_widgets() if w.message.role == "assistant"]


def test_a_sent_message_streams_the_remote_servers_answer_into_the_window(
    qtbot, window_for, backend_for, loopback_server, loopback_service
):
    backend = backend_for()
    use_remote(qtbot, backend, loopback_server)
    window = window_for(backend)
    assert window.pages.currentWidget() is window.chat_page
    deltas = []
    backend.delta.connect(lambda cid, mid, kind, text: deltas.append((kind, text)))
    script_turns(loopback_service, ["Hello from the server on loopback"])

    window.composer.input.setPlainText("Hi")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(answers(window)) == 1, timeout=10_000)
    qtbot.waitUntil(lambda: not answers(window)[0].message.streaming, timeout=60_000)

    assert answers(window)[0].message.text == "Hello from the server on loopback"
    assert len([d for d in deltas if d[0] == "text"]) > 1  # it arrived in pieces, as streamed
    stored = backend.messages(window.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].text == "Hello from the server on loopback"


def test_the_status_line_names_the_remote_model_and_server(
    qtbot, window_for, backend_for, loopback_server, loopback_service
):
    backend = backend_for()
    use_remote(qtbot, backend, loopback_server)
    window = window_for(backend)
    served = loopback_service.model_path
    assert served is not None
    label = window.status_line.model_label.text()
    assert Path(served).name in label
    assert "remote" in label and loopback_server.url.split("//")[1].split("/")[0] in label


def test_the_remote_url_is_not_remembered_as_the_local_model_folder(
    qtbot, backend_for, loopback_server
):
    backend = backend_for()
    use_remote(qtbot, backend, loopback_server)
    assert backend.model_status().state == "ready"
    assert backend.session.settings.model_path == ""


def test_switching_the_backend_setting_reloads_the_engine(qtbot, backend_for, loopback_server):
    backend = backend_for()
    assert backend.model_status().state == "none"
    use_remote(qtbot, backend, loopback_server)
    assert backend.model_status().state == "ready"
    assert backend.session.service.model_path == loopback_server.url

    backend.apply_settings({"backend": "local"})  # no local model chosen: nothing loaded
    qtbot.waitUntil(lambda: backend.model_status().state == "none", timeout=10_000)
    assert not backend.session.service.is_loaded


def test_a_wrong_api_key_shows_a_clear_error_and_the_app_goes_on(
    qtbot, window_for, backend_for, loopback_server
):
    backend = backend_for()
    use_remote(qtbot, backend, loopback_server, remote_api_key="wrong-key-0123456789")
    window = window_for(backend)
    status = backend.model_status()
    assert status.state == "error"
    assert "API key" in status.message and loopback_server.url in status.message
    assert "Model error" in window.status_line.model_label.text()


def test_an_unreachable_server_shows_an_error_naming_its_url(qtbot, backend_for):
    backend = backend_for()
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend.apply_settings({"backend": "remote", "remote_url": url})
    qtbot.waitUntil(lambda: backend.model_status().state == "error", timeout=30_000)
    assert "127.0.0.1" in backend.model_status().message


def test_the_api_key_can_come_from_the_environment(
    qtbot, backend_for, loopback_server, monkeypatch
):
    monkeypatch.setenv("GEMMA_DESK_TEST_REMOTE_KEY", LOOPBACK_API_KEY)
    backend = backend_for()
    use_remote(qtbot, backend, loopback_server, remote_api_key="env:GEMMA_DESK_TEST_REMOTE_KEY")
    assert backend.model_status().state == "ready"
