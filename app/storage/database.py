"""The SQLite database file: WAL mode, schema version with ordered migrations, transactional writes.

One `Database` wraps one connection that any thread may use (calls are serialised by a
lock). Several processes (the GUI and `gemma-desk chat`) may open the same file at once:
WAL mode lets readers run beside one writer and `busy_timeout` makes writers wait their
turn instead of failing. Every write goes through `transaction()`, so a process killed at
any moment leaves the last committed state on disk and nothing half-written.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.paths import PRIVATE_FILE_MODE, make_private

# Each migration takes the schema from version i to i + 1 (MIGRATIONS[i]). Append only:
# never edit a migration that has shipped.
Migration = Callable[[sqlite3.Connection], None]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several SQL statements inside the caller's transaction.

    (`executescript` would COMMIT first, which breaks the all-or-nothing migration.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:60]}")


def _migration_1(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE folders (
            id          INTEGER PRIMARY KEY,
            name        TEXT NOT NULL,
            parent_id   INTEGER REFERENCES folders(id) ON DELETE CASCADE,
            position    INTEGER NOT NULL DEFAULT 0,
            created_at  REAL NOT NULL
        );

        CREATE TABLE conversations (
            id             INTEGER PRIMARY KEY,
            uuid           TEXT NOT NULL UNIQUE,
            title          TEXT NOT NULL DEFAULT '',
            folder_id      INTEGER REFERENCES folders(id) ON DELETE SET NULL,
            system_prompt  TEXT,
            model          TEXT NOT NULL DEFAULT '',
            pinned         INTEGER NOT NULL DEFAULT 0,
            created_at     REAL NOT NULL,
            updated_at     REAL NOT NULL,
            deleted_at     REAL
        );
        CREATE INDEX conversations_by_update ON conversations(deleted_at, updated_at DESC);
        CREATE INDEX conversations_by_folder ON conversations(folder_id);

        CREATE TABLE messages (
            id               INTEGER PRIMARY KEY,
            conversation_id  INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position         INTEGER NOT NULL,
            role             TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
            text             TEXT NOT NULL DEFAULT '',
            thinking         TEXT NOT NULL DEFAULT '',
            tool_calls       TEXT,
            tool_result      TEXT,
            stats            TEXT,
            status           TEXT NOT NULL DEFAULT 'done'
                             CHECK (status IN ('streaming', 'done', 'error')),
            error            TEXT,
            replaces_id      INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            superseded_at    REAL,
            created_at       REAL NOT NULL,
            updated_at       REAL NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, superseded_at, position);
        CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';

        CREATE TABLE media (
            sha256          TEXT PRIMARY KEY,
            kind            TEXT NOT NULL,
            mime            TEXT NOT NULL,
            size            INTEGER NOT NULL,
            rel_path        TEXT NOT NULL,
            thumb_rel_path  TEXT,
            meta            TEXT NOT NULL DEFAULT '{}',
            created_at      REAL NOT NULL
        );

        CREATE TABLE attachments (
            id          INTEGER PRIMARY KEY,
            message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position    INTEGER NOT NULL,
            sha256      TEXT NOT NULL REFERENCES media(sha256),
            kind        TEXT NOT NULL,
            filename    TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX attachments_by_message ON attachments(message_id, position);
        CREATE INDEX attachments_by_media ON attachments(sha256);

        CREATE TABLE settings (
            key    TEXT PRIMARY KEY,
            value  TEXT NOT NULL
        );

        -- Full-text search over message text (external content: the text lives once).
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='messages', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
        END;
        """,
    )


def _migration_2(conn: sqlite3.Connection) -> None:
    # "Next position in this conversation" (MAX(position)) straight from an index: appending
    # stays O(log n) in very long conversations and imports.
    conn.execute("CREATE INDEX messages_by_position ON messages(conversation_id, position)")


def _migration_branches(conn: sqlite3.Connection) -> None:
    """Conversations become trees (edits and regenerations are branches), chats get their
    own options, and assistant presets get a table."""
    run_script(
        conn,
        """
        -- The message this one follows (NULL: the first of its conversation). Messages with
        -- the same parent and role are versions of one another (an edit, a regeneration).
        ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id) ON DELETE SET NULL;
        CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id);
        -- A chat's own options (JSON): the preset it started from, sampling, thinking, tools.
        ALTER TABLE conversations ADD COLUMN options TEXT;
        CREATE TABLE presets (
            id             INTEGER PRIMARY KEY,
            name           TEXT NOT NULL UNIQUE,
            system_prompt  TEXT NOT NULL DEFAULT '',
            options        TEXT NOT NULL DEFAULT '{}',
            created_at     REAL NOT NULL,
            updated_at     REAL NOT NULL
        );
        """,
    )
    _link_parents(conn)


def _link_parents(conn: sqlite3.Connection) -> None:
    """Give the messages of an older database their parents.

    Walk each conversation in order, keeping the path the user saw: a message that replaced
    another (`replaces_id`, written by every edit and regeneration) cuts the path back to
    the one it replaced and becomes its sibling; any other message follows the path's end.
    """
    rows = conn.execute(
        "SELECT id, conversation_id, replaces_id FROM messages ORDER BY conversation_id, position, id"
    ).fetchall()
    path: list[int] = []
    conversation = None
    for message_id, conversation_id, replaces_id in rows:
        if conversation_id != conversation:
            conversation, path = conversation_id, []
        if replaces_id is not None and replaces_id in path:
            del path[path.index(replaces_id) :]
        parent = path[-1] if path else None
        conn.execute("UPDATE messages SET parent_id = ? WHERE id = ?", (parent, message_id))
        path.append(message_id)


MIGRATIONS: list[Migration] = [_migration_1, _migration_2, _migration_branches]
SCHEMA_VERSION = len(MIGRATIONS)


class DatabaseError(RuntimeError):
    """The database cannot be opened or is newer than this app; the message says which file."""


class Database:
    """One SQLite file opened in WAL mode and migrated to `SCHEMA_VERSION`; thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 10.0,
        migrations: Sequence[Migration] | None = None,
    ) -> None:
        self.path = Path(path)
        self._migrations = list(MIGRATIONS if migrations is None else migrations)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created private (0600) whatever the umask; SQLite gives its -wal and -shm files
            # the database file's permissions.
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
            self._conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(f"{self.path}: could not switch to WAL mode (got {mode!r}).")
            # NORMAL in WAL mode: a killed app never loses a committed transaction (the OS
            # still holds it); only a power cut may drop the last few, and never corrupts.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            # Deleted and overwritten content is zeroed, not left in free pages: "delete
            # forever" and a secret moved to the keychain leave no readable copy behind.
            self._conn.execute("PRAGMA secure_delete = ON")
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"Cannot open the database {self.path}: {exc}") from exc
        for suffix in ("", "-wal", "-shm"):  # repair files an older version left readable
            make_private(f"{self.path}{suffix}")
        self.migrate()

    # -- schema -----------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file (`PRAGMA user_version`)."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply pending migrations, each in its own transaction; returns the new version."""
        target = len(self._migrations)
        with self._lock:
            current = self.schema_version
            if current > target:
                raise DatabaseError(
                    f"{self.path} was written by a newer Gemma Desk (schema {current}, this app "
                    f"knows up to {target}). Update the app, or choose another data folder."
                )
            for version in range(current, target):
                with self.transaction() as conn:
                    # Re-read inside the write lock: another process may have migrated already.
                    if int(conn.execute("PRAGMA user_version").fetchone()[0]) > version:
                        continue
                    self._migrations[version](conn)
                    conn.execute(f"PRAGMA user_version = {version + 1}")
            return self.schema_version

    # -- access -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`with db.transaction() as conn:` all writes inside commit together or not at all.

        Re-entrant: a nested `transaction()` joins the outer one. BEGIN IMMEDIATE takes the
        write lock up front, so two processes never deadlock upgrading read locks.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._begin_immediate()
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._depth = 0
                self._conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        # busy_timeout covers most contention; retry a few times past it for safety.
        for attempt in range(5):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read and return all rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> sqlite3.Row | None:
        """Run a read and return the first row (or None)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one write in its own transaction (or inside the caller's open one)."""
        with self.transaction() as conn:
            return conn.execute(sql, params)

    def integrity_check(self) -> str:
        """`PRAGMA integrity_check`: "ok" for a healthy file, else SQLite's list of problems."""
        with self._lock:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
            return "\n".join(str(r[0]) for r in rows)

    def checkpoint(self) -> None:
        """Fold the WAL file back into the database file (done automatically as well)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
