"""Secrets in the OS keychain (a fake in-memory keyring here), the plain-text fallback that
says so, a private data folder, and the warnings before a key could leak."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from app.keychain import SERVICE, SecretStore, plain_http_warning
from app.paths import DataPaths
from app.settings import SettingsStore
from app.storage import open_storage
from app.storage.database import Database

SERVER_KEY = "server-secret-0123456789"
REMOTE_KEY = "remote-secret-abcdefghij"
HEADER = "Bearer mcp-header-secret"
ENV_TOKEN = "mcp-env-secret"


class MemoryKeyring(KeyringBackend):
    """A keychain in a dict (what the macOS Keychain does, for the tests)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.items[(service, username)]


def mcp_entry() -> dict:
    return {
        "name": "notes",
        "url": "https://mcp.example/mcp",
        "headers": {"Authorization": HEADER},
        "env": {"TOKEN": ENV_TOKEN},
    }


def database_bytes(db: Database) -> bytes:
    """Everything SQLite wrote for this database (file, WAL and shared memory)."""
    return b"".join(
        Path(f"{db.path}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(f"{db.path}{suffix}").exists()
    )


@pytest.fixture
def keychain() -> MemoryKeyring:
    return MemoryKeyring()


def test_secrets_go_to_the_keychain_and_never_into_the_database(storage, keychain) -> None:
    secrets = SecretStore(str(storage.paths.root), backend=keychain)
    store = SettingsStore(storage.db, secrets=secrets)
    store.update(server_api_key=SERVER_KEY, remote_api_key=REMOTE_KEY, mcp_servers=[mcp_entry()])
    raw = database_bytes(storage.db)
    for secret in (SERVER_KEY, REMOTE_KEY, HEADER, ENV_TOKEN):
        assert secret.encode() not in raw
    assert {s for (service, _), s in keychain.items.items() if service == SERVICE} >= {
        SERVER_KEY,
        REMOTE_KEY,
    }
    again = SettingsStore(storage.db, secrets=secrets).settings
    assert (again.server_api_key, again.remote_api_key) == (SERVER_KEY, REMOTE_KEY)
    assert again.mcp_servers[0]["headers"] == {"Authorization": HEADER}
    assert again.mcp_servers[0]["env"] == {"TOKEN": ENV_TOKEN}


def test_plain_text_secrets_from_before_are_moved_into_the_keychain(storage, keychain) -> None:
    without = SettingsStore(storage.db, secrets=SecretStore("x", backend=fail.Keyring()))
    without.update(server_api_key=SERVER_KEY, mcp_servers=[mcp_entry()])
    assert SERVER_KEY.encode() in database_bytes(storage.db)
    store = SettingsStore(storage.db, secrets=SecretStore("x", backend=keychain))
    assert store.settings.server_api_key == SERVER_KEY
    assert SERVER_KEY.encode() not in database_bytes(storage.db)
    assert HEADER.encode() not in database_bytes(storage.db)
    assert store.settings.mcp_servers[0]["headers"] == {"Authorization": HEADER}


def test_without_a_keychain_secrets_stay_in_the_database_and_the_app_says_so(storage) -> None:
    secrets = SecretStore("x", backend=fail.Keyring())
    assert not secrets.available
    assert "plain text" in secrets.location() and "no keychain" in secrets.location()
    store = SettingsStore(storage.db, secrets=secrets)
    store.update(server_api_key=SERVER_KEY)
    assert SettingsStore(storage.db, secrets=secrets).settings.server_api_key == SERVER_KEY


def test_an_environment_variable_reference_is_not_a_secret(storage, keychain) -> None:
    store = SettingsStore(storage.db, secrets=SecretStore("x", backend=keychain))
    store.update(remote_api_key="env:REMOTE_KEY")
    assert b"env:REMOTE_KEY" in database_bytes(storage.db) and keychain.items == {}


def test_a_secret_missing_from_the_keychain_is_reported_not_crashed_on(storage, keychain) -> None:
    secrets = SecretStore("x", backend=keychain)
    SettingsStore(storage.db, secrets=secrets).update(server_api_key=SERVER_KEY)
    keychain.items.clear()
    store = SettingsStore(storage.db, secrets=secrets)
    assert store.settings.server_api_key == ""
    assert any("keychain" in problem for problem in store.problems)


def test_removing_an_mcp_server_removes_its_keychain_entry(storage, keychain) -> None:
    store = SettingsStore(storage.db, secrets=SecretStore("x", backend=keychain))
    store.update(mcp_servers=[mcp_entry()])
    assert len(keychain.items) == 1
    store.update(mcp_servers=[])
    assert keychain.items == {}


def test_two_data_folders_keep_their_own_secrets(tmp_path: Path, keychain) -> None:
    with open_storage(tmp_path / "a") as a, open_storage(tmp_path / "b") as b:
        SettingsStore(a.db, secrets=SecretStore(str(a.paths.root), backend=keychain)).update(
            server_api_key=SERVER_KEY
        )
        other = SettingsStore(b.db, secrets=SecretStore(str(b.paths.root), backend=keychain))
        assert other.settings.server_api_key == ""


# -- permissions ----------------------------------------------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_the_data_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with open_storage(tmp_path / "data") as storage:
            record = storage.media.add_bytes(
                b"\x89PNG x", kind="image", mime="image/png", ext=".png"
            )
            storage.media.set_thumbnail(record.sha256, b"jpeg")
            storage.conversations.create_conversation("hi")
            root = storage.paths.root
            assert mode(root) == 0o700 and mode(root / "media") == 0o700
            for suffix in ("", "-wal", "-shm"):
                assert mode(Path(f"{storage.db.path}{suffix}")) == 0o600, suffix
            assert mode(record.path) == 0o600 and mode(record.path.parent) == 0o700
            assert mode(storage.media.get(record.sha256).thumbnail) == 0o600
    finally:
        os.umask(old)


@posix_only
def test_a_data_folder_left_readable_by_others_is_repaired(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with open_storage(tmp_path / "data") as storage:
            record = storage.media.add_bytes(b"x", kind="image", mime="image/png", ext=".png")
        root = tmp_path / "data"
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        DataPaths(root).ensure()
        with open_storage(root):
            pass
        for path in [root, *root.rglob("*")]:
            assert mode(path) == (0o700 if path.is_dir() else 0o600), path
        assert record.path.exists()
    finally:
        os.umask(old)


# -- warnings before a key could leak ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://gpu-box:8000/v1", True),
        ("http://192.168.1.20/v1", True),
        ("https://gpu-box/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("http://localhost/v1", False),
        ("http://[::1]:8000/v1", False),
    ],
)
def test_a_key_over_plain_http_to_another_machine_is_warned_about(url: str, warned: bool) -> None:
    warning = plain_http_warning(url, "The API key")
    assert (warning is not None) == warned
    if warned:
        assert "unencrypted" in warning and "https://" in warning


def test_serve_prefers_the_environment_variable_and_warns_about_a_key_in_ps(monkeypatch) -> None:
    from app.server import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    monkeypatch.setenv(command.API_KEY_ENV, "from-the-environment")
    quiet = parser.parse_args(["--model", "m"])
    assert command.config_from_args(quiet).api_key == "from-the-environment"
    assert command.security_warnings(quiet, command.config_from_args(quiet)) == []
    loud = parser.parse_args(
        ["--model", "m", "--api-key", "on-the-command-line", "--host", "0.0.0.0"]
    )
    config = command.config_from_args(loud)
    assert config.api_key == "on-the-command-line"
    warnings = " ".join(command.security_warnings(loud, config))
    assert "ps" in warnings and command.API_KEY_ENV in warnings and "unencrypted" in warnings


def test_the_session_warns_before_a_remote_key_goes_over_plain_http(tmp_path: Path) -> None:
    from app.session import AppSession, Notice
    from tests.doubles import fake_factory

    notices: list[str] = []
    with AppSession(tmp_path / "data", engine_factory=fake_factory()) as session:
        session.subscribe(lambda event: isinstance(event, Notice) and notices.append(event.text))
        session.apply_settings({"remote_api_key": "sk-test"})
        assert session.load_remote("http://gpu-box:8000/v1").wait(30)
        assert session.load_remote("http://127.0.0.1:8000/v1").wait(30)
    assert [n for n in notices if "unencrypted" in n] == [
        plain_http_warning("http://gpu-box:8000/v1", "The remote API key")
    ]
