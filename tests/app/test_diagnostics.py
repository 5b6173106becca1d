"""Help ▸ Save Diagnostics and the log; device names and the microphone's messages."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import pytest

from app.capture import devices
from app.capture.sources import portaudio_text
from app.diagnostics import redacted_settings, setup_logging
from app.session import AppSession
from app.settings import Settings


@pytest.fixture
def session(tmp_path: Path):
    with AppSession(tmp_path / "data") as s:
        yield s


def test_the_diagnostics_zip_holds_logs_versions_plan_settings_and_errors(session, tmp_path):
    logs = setup_logging(session.storage.paths.root)
    try:
        session.settings_store.update(remote_api_key="sk-very-secret", server_api_key="k2")
        conv = session.new_chat()
        store = session.storage.conversations
        store.add_message(conv.id, "user", "my private question")
        store.add_message(conv.id, "assistant", "a private answer", status="error",
                          error="The model ran out of memory.", stats={"error_kind": "memory"})  # fmt: skip
        logging.getLogger("app.test").error("loading failed in the engine thread")
        path = session.save_diagnostics(tmp_path / "diagnostics.zip")
    finally:
        logs.close()
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert {"versions.json", "model.json", "settings.json", "errors.json"} <= names
        assert "logs/gemma-desk.log" in names and "conversation.json" not in names
        everything = "".join(archive.read(n).decode("utf-8", "replace") for n in names)
        errors = json.loads(archive.read("errors.json"))
        versions = json.loads(archive.read("versions.json"))
    assert "sk-very-secret" not in everything and "k2" not in json.dumps(errors)
    assert "private" not in everything  # no message content unless asked
    assert errors["answers"][0]["kind"] == "memory"
    assert any("loading failed" in e["message"] and "app.test" in e["where"] for e in errors["log"])
    assert "mlx" in versions["packages"]


def test_the_open_conversation_goes_in_only_when_asked(session, tmp_path):
    conv = session.new_chat()
    session.storage.conversations.add_message(conv.id, "user", "include me")
    path = session.save_diagnostics(tmp_path / "d.zip", conversation_id=conv.id)
    with zipfile.ZipFile(path) as archive:
        assert "include me" in archive.read("conversation.json").decode()


def test_settings_lose_their_secrets_but_keep_env_references():
    settings = Settings(remote_api_key="env:MY_KEY", server_api_key="abc",
                        mcp_servers=({"name": "web", "url": "http://127.0.0.1:1/mcp",
                                      "headers": {"Authorization": "Bearer x"}, "trusted": True},))  # fmt: skip
    data = redacted_settings(settings)
    assert data["remote_api_key"] == "env:MY_KEY" and data["server_api_key"] == "(set)"
    assert data["mcp_servers"][0]["headers"] == {"Authorization": "(set)"}


def test_portaudio_codes_are_not_shown_to_people():
    assert portaudio_text(Exception("Error querying device -1")) == "Error querying device"
    text = portaudio_text(
        Exception("Error opening InputStream: Invalid sample rate [PaErrorCode -9997]")
    )
    assert text == "Error opening InputStream: Invalid sample rate"


def test_linux_cameras_are_listed_by_name_without_metadata_nodes(tmp_path: Path):
    for node, name, index in (("video0", "Integrated Camera", "0"), ("video1", "Integrated Camera", "1"),
                              ("video2", "USB Webcam", "0")):  # fmt: skip
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(index)
    found = devices._linux_cameras(tmp_path)
    assert [(c.index, c.name) for c in found] == [(0, "Integrated Camera"), (2, "USB Webcam")]
    assert devices.camera_index("USB Webcam", found) == 2
    assert devices.camera_index("Gone", found) == 0


def test_a_session_deletes_undoes_and_empties_the_trash(session):
    conv = session.new_chat("Translator")
    assert session.storage.conversations.get_conversation(conv.id).options["preset"] == "Translator"
    session.delete_chat(conv.id)
    assert session.storage.conversations.list_trash()[0].id == conv.id
    assert session.undo_delete() == conv.id and session.undo_delete() is None
    session.delete_chat(conv.id)
    assert session.delete_forever() == 1 and session.storage.conversations.list_trash() == []


def test_the_memory_plan_of_a_bf16_checkpoint_says_16_bit_not_4_bit(tiny_checkpoint_bf16):
    from app.models.offer import memory_plan_text

    rows, _ = memory_plan_text(Settings(precision="auto"), str(tiny_checkpoint_bf16), None)
    weights = dict(rows)["Weights"]
    assert "4-bit" not in weights and "16-bit" in weights
    rows, _ = memory_plan_text(Settings(precision="4bit"), str(tiny_checkpoint_bf16), None)
    assert "4-bit" in dict(rows)["Weights"]
