"""Importing a conversation export: nothing written outside the media folder, nothing left
behind by a failed import, every field checked before anything is written, and a long
import that other writers can interleave with."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.conversation_controller import render_chat
from app.storage import open_storage
from app.storage.database import Database
from app.storage.export import (
    FORMAT,
    ImportFormatError,
    import_json_data,
    to_json_data,
    to_markdown,
)
from app.storage.media import MediaPathError

PICTURE = b"\x89PNG not really a picture"


def export(messages: list[Any], media: dict[str, Any] | None = None, **conversation: Any) -> dict:
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "conversation": {"title": "Imported", **conversation},
        "messages": messages,
    }
    if media is not None:
        data["media"] = media
    return data


def embedded(data: bytes, **fields: Any) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    item = {"kind": "image", "mime": "image/png", "ext": ".png"}
    item.update(fields)
    item["data"] = base64.b64encode(data).decode()
    return {sha: item}


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_a_media_extension_that_climbs_out_of_the_store_is_refused_before_anything_is_written(
    storage, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    before = files_under(tmp_path)
    for ext in ("/../../../victim.txt", "..", ".png/../../x", ".p\\ng", "." + "a" * 11):
        sha = hashlib.sha256(PICTURE).hexdigest()
        data = export(
            [{"role": "user", "text": "hi", "attachments": [{"sha256": sha, "kind": "image"}]}],
            embedded(PICTURE, ext=ext),
        )
        with pytest.raises(ImportFormatError, match="extension"):
            import_json_data(data, storage.conversations, storage.media)
    assert victim.read_text() == "precious"
    assert files_under(tmp_path) == before
    assert storage.conversations.list_conversations() == []
    assert storage.conversations.list_trash() == []


def test_the_media_store_checks_hashes_extensions_and_the_resolved_path(storage) -> None:
    with pytest.raises(MediaPathError):
        storage.media.add_bytes(b"x", kind="image", mime="image/png", ext="/../../evil")
    with pytest.raises(MediaPathError):
        storage.media.path_for("../" * 21 + "x", ".png")
    with pytest.raises(MediaPathError):
        storage.media.write_derived("ab" * 32, "/../../x.jpg", b"x")
    # A folder inside the store that is a link to elsewhere is not followed.
    sha = hashlib.sha256(b"linked").hexdigest()
    outside = storage.paths.root.parent / "outside"
    outside.mkdir()
    (storage.media.root / sha[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(MediaPathError, match="outside the media folder"):
        storage.media.add_bytes(b"linked", kind="image", mime="image/png", ext=".png")
    assert list(outside.iterdir()) == []


def test_an_embedded_file_that_does_not_match_its_checksum_writes_nothing(storage) -> None:
    item = embedded(PICTURE)
    sha = next(iter(item))
    item[sha]["data"] = base64.b64encode(b"other bytes").decode()
    before = files_under(storage.paths.root / "media")
    with pytest.raises(ImportFormatError, match="checksum"):
        import_json_data(export([], item), storage.conversations, storage.media)
    assert files_under(storage.paths.root / "media") == before
    assert storage.media.find(sha) is None


def test_a_failure_while_writing_messages_removes_the_conversation_and_the_new_media(
    storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = storage.media.add_bytes(b"already here", kind="image", mime="image/png", ext=".png")
    sha = hashlib.sha256(PICTURE).hexdigest()
    messages = [
        {"role": "user", "text": f"m{i}", "attachments": [{"sha256": sha, "kind": "image"}]}
        for i in range(12)
    ]
    media = {**embedded(PICTURE), **embedded(b"already here")}
    real = storage.conversations.append_messages
    calls = []

    def failing(conversation_id: int, rows: list) -> list[int]:
        calls.append(len(rows))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(conversation_id, rows)

    monkeypatch.setattr(storage.conversations, "append_messages", failing)
    with pytest.raises(OSError, match="disk full"):
        import_json_data(
            export(messages, media), storage.conversations, storage.media, chunk_size=5
        )
    assert calls == [5, 5]
    assert storage.conversations.list_conversations() == []
    assert storage.conversations.list_trash() == []
    assert storage.media.find(sha) is None
    assert not storage.media.path_for(sha, ".png").exists()
    assert storage.media.path_of(kept.sha256).read_bytes() == b"already here"


BAD_FIELDS = [
    ({"tool_calls": "search"}, "tool_calls"),
    ({"tool_calls": [{"name": "f", "arguments": "[1]"}]}, "arguments"),
    ({"tool_calls": [{"arguments": {}}]}, "name"),
    ({"tool_result": ["x"]}, "tool_result"),
    ({"tool_result": {"call": {"name": "f"}, "error": 3}}, "error"),
    ({"created_at": "yesterday"}, "created_at"),
    ({"created_at": math.nan}, "created_at"),
    ({"created_at": True}, "created_at"),
    ({"created_at": 1e300}, "created_at"),
    ({"attachments": [{"sha256": "../../etc/passwd", "kind": "image"}]}, "sha256"),
    ({"attachments": [{"sha256": "a" * 64, "kind": "program"}]}, "kind"),
    ({"attachments": {"sha256": "a" * 64}}, "attachments"),
    ({"stats": {"decode_tps": "fast"}}, "decode_tps"),
    ({"stats": {"extra": []}}, "extra"),
    ({"text": ["not", "text"]}, "text"),
    ({"status": "streaming?"}, "status"),
    (
        {"tool_result": {"call": {"name": "f"}, "result": json.loads("[" * 100 + "]" * 100)}},
        "nests",
    ),
]


@pytest.mark.parametrize(("fields", "named"), BAD_FIELDS)
def test_a_malformed_field_is_a_typed_error_naming_it_and_nothing_is_written(
    storage, fields: dict[str, Any], named: str
) -> None:
    messages = [{"role": "user", "text": "fine"}, {"role": "assistant", "text": "x", **fields}]
    with pytest.raises(ImportFormatError, match=named) as caught:
        import_json_data(export(messages), storage.conversations, storage.media)
    assert "message 2" in str(caught.value)
    assert storage.conversations.list_conversations() == []
    assert storage.conversations.list_trash() == []


def test_an_export_file_nested_too_deeply_is_a_format_error(storage, tmp_path: Path) -> None:
    from app.storage.export import import_json

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ImportFormatError, match="nests too deeply|not a Gemma Desk"):
        import_json(path, storage.conversations, storage.media)


def test_appending_reads_the_next_position_from_an_index(storage) -> None:
    plan = storage.db.query(
        "EXPLAIN QUERY PLAN SELECT COALESCE(MAX(position) + 1, 0) FROM messages"
        " WHERE conversation_id = ?",
        (1,),
    )
    assert "messages_by_position" in " ".join(str(row["detail"]) for row in plan)


def test_a_long_import_lets_another_writer_in_between_chunks_and_stays_hidden_until_done(
    storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.storage.export as export_module

    other = Database(storage.db.path, busy_timeout_s=0.2)
    seen: list[tuple[int, int]] = []

    def another_writer(_seconds: float) -> None:
        # Runs between two import transactions: the write lock must be free right now.
        other.execute("INSERT INTO settings (key, value) VALUES (?, '1')", (f"k{len(seen)}",))
        visible = other.query("SELECT COUNT(*) FROM conversations WHERE deleted_at IS NULL")
        stored = other.query("SELECT COUNT(*) FROM messages")
        seen.append((visible[0][0], stored[0][0]))

    monkeypatch.setattr(export_module.time, "sleep", another_writer)
    messages = [{"role": "user", "text": f"message {i}"} for i in range(1200)]
    conv = import_json_data(export(messages), storage.conversations, storage.media, chunk_size=500)
    other.close()
    assert seen == [(0, 500), (0, 1000)]  # hidden while importing, in two pauses
    assert not conv.in_trash
    assert [m.text for m in storage.conversations.messages(conv.id)][-1] == "message 1199"


# -- property: arbitrary input is a typed error or a conversation that renders and exports ------

JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
SHA = st.sampled_from([hashlib.sha256(PICTURE).hexdigest(), "a" * 64, "../" * 3, "x"])
ATTACHMENT = st.fixed_dictionaries(
    {"sha256": SHA, "kind": st.sampled_from(["image", "audio", "video", "exe"])},
    optional={"filename": st.text(max_size=8) | JSON_LEAVES},
)
CALL = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=6) | JSON_LEAVES,
        "id": JSON_LEAVES,
        "arguments": JSON_VALUES,
    },
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system"]) | JSON_LEAVES},
    optional={
        "text": st.text(max_size=20) | JSON_VALUES,
        "thinking": st.text(max_size=8) | JSON_LEAVES,
        "tool_calls": st.lists(CALL, max_size=2) | JSON_VALUES,
        "tool_result": st.fixed_dictionaries(
            {}, optional={"call": CALL, "result": JSON_VALUES, "error": JSON_LEAVES}
        )
        | JSON_VALUES,
        "stats": st.dictionaries(
            st.sampled_from(["decode_tps", "generated_tokens", "stop_reason", "extra", "x"]),
            JSON_VALUES,
            max_size=3,
        )
        | JSON_LEAVES,
        "status": st.sampled_from(["done", "error", "streaming", "bad"]) | JSON_LEAVES,
        "error": JSON_LEAVES,
        "created_at": JSON_LEAVES,
        "attachments": st.lists(ATTACHMENT, max_size=2) | JSON_VALUES,
    },
)
MEDIA_ITEM = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["image", "audio"]) | JSON_LEAVES,
        "ext": st.sampled_from([".png", "png", "", "/../../x", ".."]) | JSON_LEAVES,
        "data": st.sampled_from([base64.b64encode(PICTURE).decode(), "!!", "AAAA"]) | JSON_LEAVES,
    }
)
EXPORTS = st.fixed_dictionaries(
    {
        "format": st.just(FORMAT),
        "version": st.sampled_from([1, 1, 1, 2, True]),
        "conversation": st.fixed_dictionaries(
            {},
            optional={
                "title": st.text(max_size=8) | JSON_LEAVES,
                "uuid": st.text(max_size=8) | JSON_LEAVES,
                "system_prompt": JSON_LEAVES,
                "model": JSON_LEAVES,
                "created_at": JSON_LEAVES,
            },
        )
        | JSON_LEAVES,
        "messages": st.lists(MESSAGE, max_size=4) | JSON_LEAVES,
    },
    optional={"media": st.dictionaries(SHA, MEDIA_ITEM, max_size=2) | JSON_VALUES},
)


VALID_CALL = st.fixed_dictionaries(
    {"id": st.text(max_size=4), "name": st.text(max_size=6)},
    optional={"arguments": st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=2)},
)
VALID_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system"])},
    optional={
        "text": st.text(max_size=20),
        "thinking": st.text(max_size=8),
        "tool_calls": st.lists(VALID_CALL, max_size=2),
        "tool_result": st.fixed_dictionaries(
            {"call": VALID_CALL, "result": JSON_VALUES, "error": st.none() | st.text(max_size=5)}
        ),
        "stats": st.fixed_dictionaries(
            {}, optional={"decode_tps": st.floats(0, 1e3), "stop_reason": st.text(max_size=5)}
        ),
        "status": st.sampled_from(["done", "error", "streaming"]),
        "created_at": st.floats(0, 2e9),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {"sha256": SHA.filter(lambda s: len(s) == 64), "kind": st.just("image")}
            ),
            max_size=2,
        ),
    },
)
VALID_EXPORTS = st.fixed_dictionaries(
    {
        "format": st.just(FORMAT),
        "version": st.just(1),
        "conversation": st.fixed_dictionaries({}, optional={"title": st.text(max_size=8)}),
        "messages": st.lists(VALID_MESSAGE, max_size=4),
    },
    optional={"media": st.just(embedded(PICTURE))},
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(VALID_EXPORTS, EXPORTS))
def test_any_export_imports_cleanly_or_is_a_format_error(tmp_path: Path, data: dict) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # one data folder per example
    with open_storage(root) as storage:
        outside_before = files_under(tmp_path) - files_under(root)
        try:
            conv = import_json_data(data, storage.conversations, storage.media)
        except ImportFormatError:
            conv = None
        assert files_under(tmp_path) - files_under(root) == outside_before
        for path in files_under(root / "media"):
            assert path.resolve().is_relative_to((root / "media").resolve())
        event("imported" if conv is not None else "refused")
        if conv is None:
            assert storage.conversations.list_conversations() == []
            return
        messages = storage.conversations.messages(conv.id)
        to_markdown(conv, messages)
        again = to_json_data(conv, messages, storage.media, embed_media=True)
        render_chat(messages, lambda sha: str(storage.media.path_of(sha)), conv.system_prompt)
        copy = import_json_data(json.loads(json.dumps(again)), storage.conversations, storage.media)
        assert len(storage.conversations.messages(copy.id)) == len(messages)
