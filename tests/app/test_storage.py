"""The database, conversations, folders, search, trash and data-folder selection."""

from __future__ import annotations

import argparse
import sqlite3
import threading
from pathlib import Path

import pytest

from app import paths
from app.storage import open_storage
from app.storage.conversations import (
    INTERRUPTED,
    TRASH_RETENTION_S,
    ConversationStore,
    StorageError,
)
from app.storage.database import MIGRATIONS, SCHEMA_VERSION, Database, DatabaseError
from app.storage.media import MediaStore


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- data folder --------------------------------------------------------------------------


def test_data_dir_cli_flag_beats_environment_beats_settings_beats_default(tmp_path: Path) -> None:
    env = {paths.CONFIG_DIR_ENV: str(tmp_path / "cfg")}
    assert paths.resolve_data_dir(None, env) == paths.default_data_dir()
    paths.set_preferred_data_dir(tmp_path / "picked", env)
    assert paths.resolve_data_dir(None, env) == (tmp_path / "picked").resolve()
    env[paths.DATA_DIR_ENV] = str(tmp_path / "from-env")
    assert paths.resolve_data_dir(None, env) == (tmp_path / "from-env").resolve()
    assert (
        paths.resolve_data_dir(str(tmp_path / "from-flag"), env)
        == (tmp_path / "from-flag").resolve()
    )
    paths.set_preferred_data_dir(None, env)
    del env[paths.DATA_DIR_ENV]
    assert paths.resolve_data_dir(None, env) == paths.default_data_dir()


def test_data_dir_argument_is_added_to_a_parser(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    paths.add_data_dir_argument(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path / "d")])
    layout = paths.data_paths(args.data_dir)
    assert layout.database == (tmp_path / "d").resolve() / paths.DATABASE_FILENAME
    assert layout.media.is_dir()


def test_data_folder_holds_one_database_file_and_the_media_folder(tmp_path: Path) -> None:
    with open_storage(tmp_path / "data") as storage:
        storage.conversations.create_conversation("x")
    names = {p.name for p in (tmp_path / "data").iterdir()}
    assert paths.DATABASE_FILENAME in names and paths.MEDIA_DIRNAME in names
    assert names <= {
        paths.DATABASE_FILENAME,
        paths.MEDIA_DIRNAME,
        f"{paths.DATABASE_FILENAME}-wal",
        f"{paths.DATABASE_FILENAME}-shm",
    }


def test_unwritable_data_folder_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(paths.DataDirError, match="Cannot create the data folder"):
        paths.data_paths(blocker / "data")


# -- database -----------------------------------------------------------------------------


def test_database_uses_wal_and_current_schema(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"
    assert db.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    assert db.integrity_check() == "ok"


def test_migrations_run_in_order_once_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    calls: list[int] = []

    def add_notes(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")

    path = tmp_path / "db.sqlite3"
    Database(path).close()
    db = Database(path, migrations=[*MIGRATIONS, add_notes])
    assert db.schema_version == SCHEMA_VERSION + 1
    db.execute("INSERT INTO notes (body) VALUES ('kept')")
    db.close()
    db = Database(path, migrations=[*MIGRATIONS, add_notes])
    assert calls == [1]
    assert db.query_one("SELECT body FROM notes")[0] == "kept"


def test_failed_migration_leaves_the_previous_version_intact(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    path = tmp_path / "db.sqlite3"
    Database(path).close()
    with pytest.raises(RuntimeError, match="boom"):
        Database(path, migrations=[*MIGRATIONS, broken])
    db = Database(path)
    assert db.schema_version == SCHEMA_VERSION
    assert db.query_one("SELECT name FROM sqlite_master WHERE name = 'half_done'") is None


def test_newer_schema_is_refused_with_a_message_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = Database(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(
        DatabaseError, match=r"newer Gemma Desk.*db\.sqlite3|db\.sqlite3.*newer Gemma Desk"
    ):
        Database(path)


def test_transaction_rolls_back_everything_on_error(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("t")
    with pytest.raises(RuntimeError), storage.db.transaction():
        store.add_message(conv.id, "user", "first")
        store.add_message(conv.id, "user", "second")
        raise RuntimeError("interrupted")
    assert store.messages(conv.id) == []


def test_two_connections_to_one_file_see_each_others_writes(tmp_path: Path) -> None:
    a = ConversationStore(Database(tmp_path / "db.sqlite3"))
    b = ConversationStore(Database(tmp_path / "db.sqlite3"))
    conv = a.create_conversation("shared")
    b.add_message(conv.id, "user", "from b")
    assert [m.text for m in a.messages(conv.id)] == ["from b"]


def test_concurrent_writers_from_threads_lose_nothing(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("busy")

    def write(tag: str) -> None:
        for i in range(20):
            store.add_message(conv.id, "user", f"{tag}{i}")

    threads = [threading.Thread(target=write, args=(t,)) for t in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    messages = store.messages(conv.id)
    assert len(messages) == 60
    assert sorted(m.position for m in messages) == list(range(60))


# -- conversations and messages -------------------------------------------------------------


def test_messages_keep_role_text_thinking_tool_calls_results_and_stats(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("chat")
    store.add_message(conv.id, "user", "What is the weather?")
    call = {"id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}
    store.add_message(conv.id, "assistant", "", thinking="I should call it.", tool_calls=[call])
    store.add_message(
        conv.id, "tool", tool_result={"call": call, "result": {"temp": 3}, "error": None}
    )
    store.add_message(conv.id, "assistant", "It is 3 °C.", stats={"decode_tps": 12.5})
    got = store.messages(conv.id)
    assert [m.role for m in got] == ["user", "assistant", "tool", "assistant"]
    assert got[1].thinking == "I should call it." and got[1].tool_calls == [call]
    assert got[2].tool_result["result"] == {"temp": 3}
    assert got[3].stats == {"decode_tps": 12.5} and got[3].status == "done"


def test_unknown_role_and_unknown_conversation_are_refused(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation()
    with pytest.raises(StorageError, match="role"):
        store.add_message(conv.id, "robot", "hi")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="No conversation"):
        store.add_message(conv.id + 99, "user", "hi")


def test_conversations_list_pinned_first_then_most_recent(tmp_path: Path) -> None:
    clock = Clock()
    store = ConversationStore(Database(tmp_path / "db"), clock=clock)
    old = store.create_conversation("old")
    clock.now += 10
    new = store.create_conversation("new")
    clock.now += 10
    pinned = store.create_conversation("pinned")
    store.update_conversation(pinned.id, pinned=True)
    clock.now += 10
    store.add_message(old.id, "user", "bump")
    assert [c.title for c in store.list_conversations()] == ["pinned", "old", "new"]
    assert new.id in {c.id for c in store.list_conversations()}


def test_folders_group_conversations_and_deleting_a_folder_keeps_them(storage) -> None:
    store = storage.conversations
    work = store.create_folder("Work")
    a = store.create_conversation("a", folder_id=work.id)
    b = store.create_conversation("b")
    assert [c.id for c in store.list_conversations(folder_id=work.id)] == [a.id]
    assert [c.id for c in store.list_conversations(folder_id=None)] == [b.id]
    store.delete_folder(work.id)
    assert store.get_conversation(a.id).folder_id is None
    assert {c.id for c in store.list_conversations()} == {a.id, b.id}
    with pytest.raises(StorageError):
        store.create_folder("   ")


# -- search ---------------------------------------------------------------------------------


def test_search_finds_words_by_prefix_across_conversations(storage) -> None:
    store = storage.conversations
    alps = store.create_conversation("Trip")
    store.add_message(alps.id, "user", "Plan a hike in the mountains near Zermatt")
    cooking = store.create_conversation("Food")
    store.add_message(cooking.id, "assistant", "Boil the pasta for nine minutes")
    hits = store.search("mount zerm")
    assert [h.conversation_id for h in hits] == [alps.id]
    assert "[mountains]" in hits[0].snippet
    assert store.search("pasta")[0].conversation_id == cooking.id
    assert store.search("quantum") == []


def test_search_sees_edits_and_ignores_trash_and_odd_syntax(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("c")
    msg = store.add_message(conv.id, "assistant", "draft")
    store.update_message(msg.id, text="final answer about llamas")
    assert store.search("draft") == []
    assert store.search("llama")[0].message_id == msg.id
    assert store.search('llama" * (')[0].message_id == msg.id  # FTS syntax in user input is inert
    store.delete_conversation(conv.id)
    assert store.search("llama") == []


def test_search_matches_conversation_titles(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("Tax return 2026")
    hits = store.search("tax")
    assert hits and hits[0].conversation_id == conv.id and hits[0].message_id is None


# -- trash ----------------------------------------------------------------------------------


def test_deleted_conversation_goes_to_trash_and_can_be_restored(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation("precious")
    store.add_message(conv.id, "user", "do not lose me")
    store.delete_conversation(conv.id)
    assert store.list_conversations() == []
    assert [c.id for c in store.list_trash()] == [conv.id]
    store.restore_conversation(conv.id)
    assert [m.text for m in store.messages(conv.id)] == ["do not lose me"]
    assert store.list_trash() == []


def test_trash_is_purged_after_30_days_and_then_media_files_go(tmp_path: Path) -> None:
    clock = Clock()
    db = Database(tmp_path / "db")
    store = ConversationStore(db, clock=clock)
    media = MediaStore(tmp_path / "media", db, clock=clock)
    record = media.add_bytes(b"\x89PNG fake bytes", kind="image", mime="image/png", ext=".png")
    conv = store.create_conversation("with media")
    store.add_message(conv.id, "user", "look", attachments=[(record.sha256, "image", "a.png")])
    store.delete_conversation(conv.id)
    clock.now += TRASH_RETENTION_S - 60
    assert store.purge_trash() == 0
    assert media.collect_garbage(grace_s=0) == []  # still referenced from the trash
    clock.now += 120
    assert store.purge_trash() == 1
    assert store.list_trash() == []
    assert record.path.exists()
    assert media.collect_garbage(grace_s=0) == [record.sha256]
    assert not record.path.exists()


def test_media_used_by_another_conversation_survives_a_purge(tmp_path: Path) -> None:
    clock = Clock()
    db = Database(tmp_path / "db")
    store = ConversationStore(db, clock=clock)
    media = MediaStore(tmp_path / "media", db, clock=clock)
    record = media.add_bytes(b"shared", kind="image", mime="image/png", ext=".png")
    for title in ("a", "b"):
        conv = store.create_conversation(title)
        store.add_message(conv.id, "user", "x", attachments=[(record.sha256, "image", "s.png")])
    store.delete_conversation(conv.id)
    clock.now += TRASH_RETENTION_S + 1
    store.purge_trash()
    assert media.collect_garbage(grace_s=0) == []
    assert record.path.exists()


# -- versions and interrupted streams -------------------------------------------------------------


def test_superseded_messages_stay_readable_as_versions(storage) -> None:
    store = storage.conversations
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "q")
    first = store.add_message(conv.id, "assistant", "first answer")
    store.supersede_from(conv.id, first.position)
    second = store.add_message(conv.id, "assistant", "second answer", replaces_id=first.id)
    assert [m.text for m in store.messages(conv.id)] == ["q", "second answer"]
    assert len(store.messages(conv.id, include_superseded=True)) == 3
    assert [m.text for m in store.message_versions(first.id)] == ["first answer", "second answer"]
    assert [m.id for m in store.message_versions(second.id)] == [first.id, second.id]


def test_stale_streaming_message_is_marked_interrupted_with_its_text_kept(tmp_path: Path) -> None:
    clock = Clock()
    store = ConversationStore(Database(tmp_path / "db"), clock=clock)
    conv = store.create_conversation()
    dead = store.add_message(conv.id, "assistant", "half an ans", status="streaming")
    clock.now += 3600
    live = store.add_message(conv.id, "assistant", "still going", status="streaming")
    assert store.recover_interrupted() == [dead.id]
    got = store.get_message(dead.id)
    assert got.status == "error" and got.error == INTERRUPTED and got.text == "half an ans"
    assert store.get_message(live.id).status == "streaming"
