"""Exporting chats to files and importing them back (File ▸ Export/Import and the CLI)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from app.cli import main
from app.storage import open_storage
from app.storage.archive import export_all, export_conversation, import_file


def _chat(storage, title: str, *texts: str) -> int:
    store = storage.conversations
    conv = store.create_conversation(title)
    for index, text in enumerate(texts):
        store.add_message(conv.id, "user" if index % 2 == 0 else "assistant", text)
    return conv.id


def test_one_chat_exports_as_markdown_and_as_json_with_its_media(storage, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 24), (90, 160, 80)).save(tmp_path / "hills.png")
    media = storage.media.add_file(
        tmp_path / "hills.png", kind="image", mime="image/png", ext=".png"
    )
    conv = storage.conversations.create_conversation("Hills")
    storage.conversations.add_message(
        conv.id, "user", "What is this?", attachments=[(media.sha256, "image", "hills.png")]
    )
    storage.conversations.add_message(conv.id, "assistant", "Green hills.")
    markdown = export_conversation(storage.conversations, storage.media, conv.id,
                                   tmp_path / "hills.md", "markdown")  # fmt: skip
    assert "# Hills" in markdown.read_text() and "Green hills." in markdown.read_text()
    exported = export_conversation(storage.conversations, storage.media, conv.id,
                                   tmp_path / "hills.json", "json", with_media=True)  # fmt: skip
    data = json.loads(exported.read_text())
    assert media.sha256 in data["media"]
    with open_storage(tmp_path / "elsewhere") as other:
        report = import_file(other.conversations, other.media, exported)
        [copy] = report.imported
        [question, _answer] = other.conversations.messages(copy.id)
        assert question.attachments[0].sha256 == media.sha256
        assert other.media.path_of(media.sha256).read_bytes() == media.path.read_bytes()


def test_export_all_writes_one_zip_that_imports_every_chat(storage, tmp_path: Path) -> None:
    _chat(storage, "First", "a", "b")
    _chat(storage, "Second: with/slashes", "c", "d")
    trashed = _chat(storage, "Trashed", "e")
    storage.conversations.delete_conversation(trashed)
    path, count = export_all(storage.conversations, storage.media, tmp_path / "all.zip")
    assert count == 2
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [
            "conversations/0001-Second with slashes.json",
            "conversations/0002-First.json",
        ]
    with open_storage(tmp_path / "elsewhere") as other:
        report = import_file(other.conversations, other.media, path)
        assert sorted(c.title for c in report.imported) == ["First", "Second: with/slashes"]
        assert report.failed == []


def test_a_damaged_export_is_named_and_changes_nothing(storage, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    report = import_file(storage.conversations, storage.media, bad)
    assert report.imported == [] and report.failed[0][0] == "bad.json"
    assert "not a Gemma Desk conversation export" in report.summary()
    assert storage.conversations.list_conversations() == []


def test_the_cli_exports_and_imports(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    with open_storage(data) as storage:
        cid = _chat(storage, "Lisbon trip", "Where to eat?", "Try the pastries.")
    out = tmp_path / "trip.json"
    assert (
        main(["export", str(cid), "--format", "json", "-o", str(out), "--data-dir", str(data)]) == 0
    )
    assert "Lisbon trip" in capsys.readouterr().out
    assert main(["import", str(out), "--data-dir", str(data)]) == 0
    assert "Imported “Lisbon trip”" in capsys.readouterr().out
    assert main(["export", "--all", "-o", str(tmp_path / "all.zip"), "--data-dir", str(data)]) == 0
    assert "Exported 2 chats" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "missing.json"), "--data-dir", str(data)]) == 1
    assert main(["export", "--data-dir", str(data)]) == 2


def test_imported_messages_follow_one_another_with_no_false_versions(storage, tmp_path: Path):
    cid = _chat(storage, "Chain", "q1", "a1", "q2", "a2")
    path = export_conversation(
        storage.conversations, storage.media, cid, tmp_path / "c.json", "json"
    )
    [copy] = import_file(storage.conversations, storage.media, path).imported
    messages = storage.conversations.messages(copy.id)
    assert [m.parent_id for m in messages[1:]] == [m.id for m in messages[:-1]]
    assert storage.conversations.version_counts(copy.id) == {}
