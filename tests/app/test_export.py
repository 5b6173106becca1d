"""Export to Markdown and JSON, and importing the JSON back (also into another data folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.storage import open_storage
from app.storage.export import (
    ImportFormatError,
    export_json,
    export_markdown,
    import_json,
    to_markdown,
)


def fill(storage) -> int:
    store = storage.conversations
    media = storage.media.add_bytes(b"picture bytes", kind="image", mime="image/png", ext=".png")
    conv = store.create_conversation("Cats", system_prompt="Be kind.")
    store.add_message(
        conv.id, "user", "Who is this?", attachments=[(media.sha256, "image", "tom.png")]
    )
    call = {"id": "c1", "name": "search", "arguments": {"q": "cat"}}
    store.add_message(
        conv.id, "assistant", "Let me look.", thinking="Looks like a cat.", tool_calls=[call]
    )
    store.add_message(conv.id, "tool", tool_result={"call": call, "result": ["Tom"], "error": None})
    store.add_message(
        conv.id, "assistant", "That is Tom ```the cat```.", stats={"decode_tps": 20.0}
    )
    return conv.id


def test_markdown_has_title_roles_text_thinking_tools_and_attachment_names(
    storage, tmp_path: Path
) -> None:
    cid = fill(storage)
    md = export_markdown(storage.conversations, cid, tmp_path / "c.md").read_text()
    assert md.startswith("# Cats\n")
    assert "**System prompt:** Be kind." in md
    assert md.index("## You") < md.index("## Gemma") < md.index("## Tool")
    assert "`tom.png`" in md and "<summary>Thinking</summary>" in md and "Looks like a cat." in md
    assert "Tool call `search`" in md and '"q": "cat"' in md and "Result of `search`" in md
    assert "That is Tom ```the cat```." in md


def test_markdown_fences_survive_backticks_in_content(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("x")
    call = {"id": "c", "name": "f", "arguments": {"code": "```"}}
    store.add_message(conv.id, "assistant", "", tool_calls=[call])
    md = to_markdown(store.get_conversation(conv.id), store.messages(conv.id))
    assert "````json" in md


def test_json_round_trip_in_the_same_store_makes_a_copy(storage, tmp_path: Path) -> None:
    cid = fill(storage)
    path = export_json(storage.conversations, cid, tmp_path / "c.json")
    data = json.loads(path.read_text())
    assert data["format"] == "gemma-desk.conversation" and data["version"] == 1
    copy = import_json(path, storage.conversations, storage.media)
    assert copy.id != cid and copy.uuid != storage.conversations.get_conversation(cid).uuid
    original = storage.conversations.messages(cid)
    imported = storage.conversations.messages(copy.id)

    def fields(m):
        attachments = [a.sha256 for a in m.attachments]
        return (m.role, m.text, m.thinking, m.tool_calls, m.tool_result, m.stats, attachments)

    assert [fields(m) for m in imported] == [fields(m) for m in original]
    assert copy.title == "Cats" and copy.system_prompt == "Be kind."


def test_json_with_embedded_media_imports_into_another_data_folder(storage, tmp_path: Path) -> None:
    cid = fill(storage)
    path = export_json(
        storage.conversations, cid, tmp_path / "c.json", storage.media, embed_media=True
    )
    original_uuid = storage.conversations.get_conversation(cid).uuid
    with open_storage(tmp_path / "other") as other:
        conv = import_json(path, other.conversations, other.media)
        assert conv.uuid == original_uuid  # no clash there: identity kept
        attachment = other.conversations.messages(conv.id)[0].attachments[0]
        assert other.media.path_of(attachment.sha256).read_bytes() == b"picture bytes"


def test_import_without_the_media_keeps_the_message_and_names_the_missing_file(
    storage, tmp_path: Path
) -> None:
    cid = fill(storage)
    path = export_json(storage.conversations, cid, tmp_path / "c.json")
    with open_storage(tmp_path / "other") as other:
        conv = import_json(path, other.conversations, other.media)
        first = other.conversations.messages(conv.id)[0]
        assert first.attachments == ()
        assert first.text.startswith("Who is this?") and "tom.png" in first.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all", "not valid JSON"),
        ('{"format": "something-else"}', "not a Gemma Desk conversation export"),
        (
            '{"format": "gemma-desk.conversation", "version": 99, "conversation": {}, "messages": []}',
            "version 99",
        ),
        (
            '{"format": "gemma-desk.conversation", "version": 1, "conversation": {}, "messages": [{"role": "x"}]}',
            "Message 1",
        ),
    ],
)
def test_bad_import_files_get_a_clear_message_and_change_nothing(
    storage, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ImportFormatError, match=message):
        import_json(path, storage.conversations, storage.media)
    assert storage.conversations.list_conversations() == []


def test_a_document_and_a_transcript_travel_with_the_conversation(storage, tmp_path: Path) -> None:
    from app.recordings import Transcript, TranscriptSegment, export_transcript

    store = storage.conversations
    doc = storage.media.add_bytes(b"%PDF-1.7 ...", kind="document", mime="application/pdf",
                                  ext=".pdf")  # fmt: skip
    conv = store.create_conversation("Minutes")
    store.add_message(conv.id, "user", "Summarize", attachments=[(doc.sha256, "document", "m.pdf")])
    transcript = Transcript(
        "standup.wav", [TranscriptSegment(0, 0.0, 30.0, "Hello all.")], 30.0, True
    )
    store.add_message(conv.id, "assistant", "[00:00] Hello all.\n\n",
                      stats={"transcript": {**transcript.to_dict(), "sha256": "a" * 64}})  # fmt: skip
    path = export_json(store, conv.id, tmp_path / "m.json", storage.media, embed_media=True)

    with open_storage(tmp_path / "other") as other:
        copy = import_json(path, other.conversations, other.media)
        user, answer = other.conversations.messages(copy.id)
        assert user.attachments[0].kind == "document"
        assert other.media.path_of(user.attachments[0].sha256).read_bytes() == b"%PDF-1.7 ..."
        kept = Transcript.from_dict(answer.stats["transcript"])
        assert export_transcript(kept, "srt") == export_transcript(transcript, "srt")
