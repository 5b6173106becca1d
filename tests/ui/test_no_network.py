"""No network unless asked: startup, the model picker, a chat turn and the local server run
with every socket blocked except loopback, and reach nothing else; offline mode stops a
download before it connects."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import httpx2
import pytest
from PySide6.QtCore import Qt

from tests.app.hub_server import go_online
from tests.doubles import free_port


class BlockedNetwork:
    """Every connection or name lookup that is not loopback (or a local socket) fails and is recorded."""

    def __init__(self) -> None:
        self.attempts: list[object] = []

    @staticmethod
    def loopback(host: object) -> bool:
        if host in (None, "localhost", b"localhost"):
            return True
        try:
            return ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback
        except ValueError:
            return False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        blocked = self

        def allowed(sock: socket.socket, address: object) -> bool:
            return sock.family == getattr(socket, "AF_UNIX", None) or (
                isinstance(address, tuple) and blocked.loopback(address[0])
            )

        def connect(sock: socket.socket, address: object) -> None:
            if not allowed(sock, address):
                blocked.attempts.append(address)
                raise OSError(f"the network is blocked in this test: {address!r}")
            return real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: object) -> int:
            if not allowed(sock, address):
                blocked.attempts.append(address)
                return 111
            return real_connect_ex(sock, address)

        def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
            if not blocked.loopback(host):
                blocked.attempts.append(host)
                raise socket.gaierror(f"name lookups are blocked in this test: {host!r}")
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> BlockedNetwork:
    """Sockets blocked except loopback, with the suite's HF_HUB_OFFLINE lifted: anything that
    tried to reach the hub on its own would now try, and be caught."""
    go_online(monkeypatch)
    blocked = BlockedNetwork()
    blocked.install(monkeypatch)
    return blocked


def test_the_block_catches_a_connection_to_the_outside(network: BlockedNetwork) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("93.184.216.34", 80))
    assert network.attempts == ["huggingface.co", ("93.184.216.34", 80)]


def test_startup_the_model_picker_a_chat_turn_and_the_server_reach_only_loopback(
    qtbot, tmp_path: Path, tiny_checkpoint: Path, window_for, network: BlockedNetwork
) -> None:
    from tests.doubles import scripted_factory
    from ui.app_backend import AppBackend
    from ui.model_dialog import ModelDialog

    backend = AppBackend(data_dir=str(tmp_path / "data"), engine_factory=scripted_factory())
    try:
        window = window_for(backend)  # startup: no model yet, the first-run screen offers one
        assert backend.download_offer() is not None
        picker = ModelDialog(backend, window)
        picker.path.setText(str(tiny_checkpoint))
        picker.refresh_plan()
        picker.load()
        qtbot.waitUntil(lambda: backend.model_status().state == "ready", timeout=60_000)
        backend.session.settings_store.update(max_tokens=8, seed=0)

        window.composer.input.setPlainText("Hello there")
        qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: bool(window.conversation_id), timeout=10_000)
        qtbot.waitUntil(
            lambda: (
                not backend.is_generating(window.conversation_id)
                and len(backend.messages(window.conversation_id)) == 2
            ),
            timeout=60_000,
        )
        answer = backend.messages(window.conversation_id)[-1]
        assert answer.role == "assistant" and answer.error is None

        backend.apply_settings({"server_enabled": True, "server_port": free_port()})
        qtbot.waitUntil(lambda: bool(backend.session.server_url), timeout=30_000)
        models = httpx2.get(backend.session.server_url + "/models").json()["data"]
        assert [m["id"] for m in models] == [tiny_checkpoint.name]
    finally:
        backend.shutdown()
    assert network.attempts == []


def test_offline_mode_stops_a_download_before_any_connection(
    tmp_path: Path, network: BlockedNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from app.models.catalog import GEMMA_4_12B_IT
    from app.models.download import ModelDownloader, OfflineModeError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineModeError):
        ModelDownloader(GEMMA_4_12B_IT, tmp_path / "models").run()
    assert network.attempts == []
