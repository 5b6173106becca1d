"""Conversations, their messages and folders in the database; full-text search; the trash.

Rules this module keeps so that nothing a user made is lost:

- every change is one transaction (`Database.transaction`);
- deleting a conversation moves it to the trash (`deleted_at`); it can be restored for
  `TRASH_RETENTION_S` (30 days) and only `purge_trash` removes it for good, after which
  media files no message refers to any more are removed by `MediaStore.collect_garbage`;
- a conversation is a tree: each message has a parent (`parent_id`), and messages with the
  same parent and role are versions of one another (an edit, a regeneration). The path
  shown is the messages not `superseded_at`; regenerate and edit-and-resend never
  overwrite, they start a sibling and mark the old branch superseded, and
  `switch_version` brings any branch back;
- a conversation in the trash takes no new writes (`ConversationInTrash`) until restored;
- a message still marked `streaming` by a process that died is kept, text and all, and
  marked `error` with `INTERRUPTED` by `recover_interrupted` the next time the store opens.

Rows come back as small frozen dataclasses; ids are SQLite integer ids, `uuid` is the
stable identity used by export/import.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid as uuid_module
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.storage.database import Database

Role = Literal["system", "user", "assistant", "tool"]
MessageStatus = Literal["streaming", "done", "error"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
TRASH_RETENTION_S = 30 * 24 * 3600
# A `streaming` message not written for this long belongs to a process that is gone
# (writers flush every 0.5 s and touch the row at least every few seconds).
STALE_STREAMING_S = 30.0
INTERRUPTED = "interrupted: the app stopped while this answer was being written"


class StorageError(ValueError):
    """A request the store refuses (unknown id, bad role, ...); the message says why."""


class ConversationInTrash(StorageError):
    """A write to a conversation in the trash (restore it first)."""


@dataclass(frozen=True)
class Folder:
    id: int
    name: str
    parent_id: int | None
    position: int
    created_at: float


@dataclass(frozen=True)
class Conversation:
    id: int
    uuid: str
    title: str
    folder_id: int | None
    system_prompt: str | None
    model: str
    pinned: bool
    created_at: float
    updated_at: float
    deleted_at: float | None
    options: dict[str, Any] = field(default_factory=dict)  # the chat's own options (JSON)

    @property
    def in_trash(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class AttachmentRef:
    """One attachment of a message: a media file (by content hash) plus its original name."""

    id: int
    message_id: int
    position: int
    sha256: str
    kind: str  # "image" | "audio" | "video"
    filename: str


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    position: int
    role: Role
    text: str
    thinking: str
    tool_calls: list[dict[str, Any]]  # assistant: [{"id", "name", "arguments"}]
    tool_result: dict[str, Any] | None  # tool: {"call": {...}, "result": ..., "error": str|None}
    stats: dict[str, Any] | None  # GenerationStats as a dict, once finished
    status: MessageStatus
    error: str | None
    replaces_id: int | None
    superseded_at: float | None
    created_at: float
    updated_at: float
    attachments: tuple[AttachmentRef, ...] = field(default=())
    parent_id: int | None = None  # the message this one follows (None: the first)


@dataclass(frozen=True)
class NewMessage:
    """A message to append with `ConversationStore.append_messages` (an import's rows)."""

    role: Role
    text: str = ""
    thinking: str = ""
    tool_calls: Sequence[dict[str, Any]] | None = None
    tool_result: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    status: MessageStatus = "done"
    error: str | None = None
    attachments: Sequence[tuple[str, str, str]] = ()  # (sha256, kind, filename)
    created_at: float | None = None


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    conversation_title: str
    message_id: int | None  # None when only the title matched
    snippet: str  # the matching text with the hits wrapped in [ and ]
    rank: float


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _folder(row: sqlite3.Row) -> Folder:
    return Folder(row["id"], row["name"], row["parent_id"], row["position"], row["created_at"])


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        uuid=row["uuid"],
        title=row["title"],
        folder_id=row["folder_id"],
        system_prompt=row["system_prompt"],
        model=row["model"],
        pinned=bool(row["pinned"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
        options=_loads(row["options"]) or {},
    )


def _attachment(row: sqlite3.Row) -> AttachmentRef:
    return AttachmentRef(
        row["id"], row["message_id"], row["position"], row["sha256"], row["kind"], row["filename"]
    )


def _message(row: sqlite3.Row, attachments: Sequence[AttachmentRef] = ()) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        position=row["position"],
        role=row["role"],
        text=row["text"],
        thinking=row["thinking"],
        tool_calls=_loads(row["tool_calls"]) or [],
        tool_result=_loads(row["tool_result"]),
        stats=_loads(row["stats"]),
        status=row["status"],
        error=row["error"],
        replaces_id=row["replaces_id"],
        superseded_at=row["superseded_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attachments=tuple(attachments),
        parent_id=row["parent_id"],
    )


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word must match, as a prefix."""
    words = re.findall(r"\w+", text, flags=re.UNICODE)
    return " ".join(f'"{w}"*' for w in words)


class ConversationStore:
    """All reads and writes of conversations, messages, folders, attachments rows and trash."""

    def __init__(self, db: Database, *, clock: Any = time.time) -> None:
        self.db = db
        self._clock = clock

    # -- conversations ------------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "",
        *,
        folder_id: int | None = None,
        system_prompt: str | None = None,
        model: str = "",
        uuid: str | None = None,
        created_at: float | None = None,
        options: dict[str, Any] | None = None,
    ) -> Conversation:
        """A new, empty conversation (title may be set later, e.g. from the first message)."""
        now = self._clock() if created_at is None else created_at
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (uuid, title, folder_id, system_prompt, model,"
                " created_at, updated_at, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uuid or str(uuid_module.uuid4()),
                    title,
                    folder_id,
                    system_prompt,
                    model,
                    now,
                    now,
                    _dumps(options or None),
                ),
            )
            return self.get_conversation(cur.lastrowid)

    def get_conversation(self, conversation_id: int) -> Conversation:
        row = self.db.query_one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if row is None:
            raise StorageError(f"No conversation with id {conversation_id}.")
        return _conversation(row)

    def find_conversation_by_uuid(self, uuid: str) -> Conversation | None:
        row = self.db.query_one("SELECT * FROM conversations WHERE uuid = ?", (uuid,))
        return None if row is None else _conversation(row)

    def list_conversations(
        self, *, folder_id: int | None | Literal["all"] = "all", limit: int | None = None
    ) -> list[Conversation]:
        """Conversations not in the trash, pinned first, then most recently updated first.

        `folder_id="all"` lists every folder; `None` lists those in no folder.
        """
        sql = "SELECT * FROM conversations WHERE deleted_at IS NULL"
        params: list[Any] = []
        if folder_id is None:
            sql += " AND folder_id IS NULL"
        elif folder_id != "all":
            sql += " AND folder_id = ?"
            params.append(folder_id)
        sql += " ORDER BY pinned DESC, updated_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_conversation(r) for r in self.db.query(sql, params)]

    def update_conversation(self, conversation_id: int, **fields: Any) -> Conversation:
        """Change title, folder_id, system_prompt, model, pinned or options (a JSON object)."""
        allowed = {"title", "folder_id", "system_prompt", "model", "pinned", "options"}
        unknown = set(fields) - allowed
        if unknown:
            raise StorageError(f"Cannot update conversation fields {sorted(unknown)}.")
        if not fields:
            return self.get_conversation(conversation_id)
        if "pinned" in fields:
            fields["pinned"] = int(bool(fields["pinned"]))
        if "options" in fields:
            fields["options"] = _dumps(fields["options"] or None)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.db.transaction() as conn:
            self._check_writable(conn, conversation_id)
            cur = conn.execute(
                f"UPDATE conversations SET {assignments}, updated_at = ? WHERE id = ?",
                (*fields.values(), self._clock(), conversation_id),
            )
            if cur.rowcount == 0:
                raise StorageError(f"No conversation with id {conversation_id}.")
        return self.get_conversation(conversation_id)

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        return self.update_conversation(conversation_id, title=title)

    def move_to_folder(self, conversation_id: int, folder_id: int | None) -> Conversation:
        return self.update_conversation(conversation_id, folder_id=folder_id)

    # -- trash --------------------------------------------------------------------------

    def delete_conversation(self, conversation_id: int) -> None:
        """Move a conversation to the trash (undo with `restore_conversation`)."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE conversations SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (self._clock(), conversation_id),
            )
            if cur.rowcount == 0:
                self.get_conversation(conversation_id)  # raises for an unknown id

    def _check_writable(self, conn: sqlite3.Connection, conversation_id: int) -> None:
        """Refuse a write to an unknown conversation or one in the trash."""
        row = conn.execute(
            "SELECT deleted_at, title FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise StorageError(f"No conversation with id {conversation_id}.")
        if row["deleted_at"] is not None:
            title = f"“{row['title']}”" if row["title"] else "This conversation"
            raise ConversationInTrash(f"{title} is in the trash: restore it before writing to it.")

    def restore_conversation(self, conversation_id: int) -> Conversation:
        """Take a conversation out of the trash."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE conversations SET deleted_at = NULL WHERE id = ?", (conversation_id,)
            )
        return self.get_conversation(conversation_id)

    def list_trash(self) -> list[Conversation]:
        """Conversations in the trash, most recently deleted first."""
        rows = self.db.query(
            "SELECT * FROM conversations WHERE deleted_at IS NOT NULL ORDER BY deleted_at DESC"
        )
        return [_conversation(r) for r in rows]

    def purge_trash(self, *, older_than_s: float = TRASH_RETENTION_S) -> int:
        """Remove for good conversations in the trash longer than `older_than_s`; returns the count.

        Media files are left for `MediaStore.collect_garbage`, which removes the ones no
        remaining message refers to.
        """
        cutoff = self._clock() - older_than_s
        with self.db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at <= ?",
                (cutoff,),
            )
            return cur.rowcount

    def delete_conversation_forever(self, conversation_id: int) -> None:
        """Remove one conversation now (the "Empty trash" / "Delete forever" action)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def empty_trash(self) -> int:
        """Remove every conversation in the trash now; returns how many."""
        return self.purge_trash(older_than_s=float("-inf"))

    # -- folders ------------------------------------------------------------------------

    def create_folder(self, name: str, *, parent_id: int | None = None) -> Folder:
        name = name.strip()
        if not name:
            raise StorageError("A folder needs a name.")
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM folders WHERE parent_id IS ?",
                (parent_id,),
            ).fetchone()
            cur = conn.execute(
                "INSERT INTO folders (name, parent_id, position, created_at) VALUES (?, ?, ?, ?)",
                (name, parent_id, row[0], self._clock()),
            )
            return _folder(
                conn.execute("SELECT * FROM folders WHERE id = ?", (cur.lastrowid,)).fetchone()
            )

    def list_folders(self) -> list[Folder]:
        return [
            _folder(r)
            for r in self.db.query("SELECT * FROM folders ORDER BY parent_id, position, id")
        ]

    def rename_folder(self, folder_id: int, name: str) -> None:
        if not name.strip():
            raise StorageError("A folder needs a name.")
        self.db.execute("UPDATE folders SET name = ? WHERE id = ?", (name.strip(), folder_id))

    def delete_folder(self, folder_id: int) -> None:
        """Remove a folder; its conversations stay, moved out to no folder (never deleted)."""
        self.db.execute("DELETE FROM folders WHERE id = ?", (folder_id,))

    # -- messages -----------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        role: Role,
        text: str = "",
        *,
        thinking: str = "",
        tool_calls: Sequence[dict[str, Any]] | None = None,
        tool_result: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        status: MessageStatus = "done",
        error: str | None = None,
        attachments: Iterable[tuple[str, str, str]] = (),
        replaces_id: int | None = None,
        created_at: float | None = None,
    ) -> Message:
        """Append a message at the end of the conversation, committed before this returns.

        `attachments` are (sha256, kind, filename) of media already in the `MediaStore`.
        It follows the last message shown; one that `replaces_id` another becomes its
        sibling (a new version of it). A conversation in the trash refuses it.
        """
        if role not in ROLES:
            raise StorageError(f"Unknown message role {role!r}; expected one of {ROLES}.")
        now = self._clock() if created_at is None else created_at
        with self.db.transaction() as conn:
            self._check_writable(conn, conversation_id)
            if replaces_id is not None:
                row = conn.execute(
                    "SELECT parent_id FROM messages WHERE id = ? AND conversation_id = ?",
                    (replaces_id, conversation_id),
                ).fetchone()
                if row is None:
                    raise StorageError(f"No message with id {replaces_id} in this conversation.")
                parent_id = row[0]
            else:
                row = conn.execute(
                    "SELECT id FROM messages WHERE conversation_id = ? AND superseded_at IS NULL"
                    " ORDER BY position DESC, id DESC LIMIT 1",
                    (conversation_id,),
                ).fetchone()
                parent_id = None if row is None else row[0]
            position = conn.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, position, role, text, thinking, tool_calls,"
                " tool_result, stats, status, error, replaces_id, created_at, updated_at,"
                " parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    position,
                    role,
                    text,
                    thinking,
                    _dumps(list(tool_calls)) if tool_calls else None,
                    _dumps(tool_result),
                    _dumps(stats),
                    status,
                    error,
                    replaces_id,
                    now,
                    now,
                    parent_id,
                ),
            )
            message_id = cur.lastrowid
            for index, (sha256, kind, filename) in enumerate(attachments):
                conn.execute(
                    "INSERT INTO attachments (message_id, position, sha256, kind, filename)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (message_id, index, sha256, kind, filename),
                )
            conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
            )
            return self.get_message(message_id)

    def append_messages(self, conversation_id: int, messages: Sequence[NewMessage]) -> list[int]:
        """Append many messages in one transaction (an import); returns their ids in order.

        The next position is read once, so this stays linear in the number of messages.
        """
        for m in messages:
            if m.role not in ROLES:
                raise StorageError(f"Unknown message role {m.role!r}; expected one of {ROLES}.")
        now = self._clock()
        ids: list[int] = []
        with self.db.transaction() as conn:
            if (
                conn.execute(
                    "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
                ).fetchone()
                is None
            ):
                raise StorageError(f"No conversation with id {conversation_id}.")
            position = conn.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()[0]
            last = conn.execute(  # each appended message follows the one before it
                "SELECT id FROM messages WHERE conversation_id = ? AND superseded_at IS NULL"
                " ORDER BY position DESC, id DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
            parent_id = None if last is None else last[0]
            attachment_rows: list[tuple[int, int, str, str, str]] = []
            for offset, m in enumerate(messages):
                created = now if m.created_at is None else m.created_at
                cur = conn.execute(
                    "INSERT INTO messages (conversation_id, position, role, text, thinking,"
                    " tool_calls, tool_result, stats, status, error, created_at, updated_at,"
                    " parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        position + offset,
                        m.role,
                        m.text,
                        m.thinking,
                        _dumps(list(m.tool_calls)) if m.tool_calls else None,
                        _dumps(m.tool_result),
                        _dumps(m.stats),
                        m.status,
                        m.error,
                        created,
                        created,
                        parent_id,
                    ),
                )
                parent_id = cur.lastrowid
                ids.append(cur.lastrowid)
                attachment_rows.extend(
                    (cur.lastrowid, index, sha256, kind, filename)
                    for index, (sha256, kind, filename) in enumerate(m.attachments)
                )
            conn.executemany(
                "INSERT INTO attachments (message_id, position, sha256, kind, filename)"
                " VALUES (?, ?, ?, ?, ?)",
                attachment_rows,
            )
            if messages:  # as `add_message` does: the conversation was updated by the last one
                conn.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?",
                    (created, conversation_id),
                )
        return ids

    def get_message(self, message_id: int) -> Message:
        row = self.db.query_one("SELECT * FROM messages WHERE id = ?", (message_id,))
        if row is None:
            raise StorageError(f"No message with id {message_id}.")
        return _message(row, self._attachments_of([message_id]).get(message_id, ()))

    def messages(self, conversation_id: int, *, include_superseded: bool = False) -> list[Message]:
        """The conversation's messages in order (current versions only unless asked)."""
        sql = "SELECT * FROM messages WHERE conversation_id = ?"
        if not include_superseded:
            sql += " AND superseded_at IS NULL"
        rows = self.db.query(sql + " ORDER BY position, id", (conversation_id,))
        attachments = self._attachments_of([r["id"] for r in rows])
        return [_message(r, attachments.get(r["id"], ())) for r in rows]

    def _attachments_of(self, message_ids: Sequence[int]) -> dict[int, list[AttachmentRef]]:
        result: dict[int, list[AttachmentRef]] = {}
        if not message_ids:
            return result
        # Chunk to stay under SQLite's bound-parameter limit for very long conversations.
        for start in range(0, len(message_ids), 500):
            chunk = list(message_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.query(
                f"SELECT * FROM attachments WHERE message_id IN ({marks}) ORDER BY message_id, position",
                chunk,
            )
            for row in rows:
                result.setdefault(row["message_id"], []).append(_attachment(row))
        return result

    def update_message(
        self,
        message_id: int,
        *,
        text: str | None = None,
        thinking: str | None = None,
        tool_calls: Sequence[dict[str, Any]] | None = None,
        stats: dict[str, Any] | None = None,
        status: MessageStatus | None = None,
        error: str | None = None,
    ) -> None:
        """Overwrite the given fields of a message in one transaction (the streaming flush)."""
        fields: dict[str, Any] = {}
        if text is not None:
            fields["text"] = text
        if thinking is not None:
            fields["thinking"] = thinking
        if tool_calls is not None:
            fields["tool_calls"] = _dumps(list(tool_calls))
        if stats is not None:
            fields["stats"] = _dumps(stats)
        if status is not None:
            fields["status"] = status
        if error is not None:
            fields["error"] = error
        now = self._clock()
        assignments = "".join(f"{name} = ?, " for name in fields)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT conversation_id FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise StorageError(f"No message with id {message_id}.")
            self._check_writable(conn, row[0])
            cur = conn.execute(
                f"UPDATE messages SET {assignments}updated_at = ? WHERE id = ?",
                (*fields.values(), now, message_id),
            )
            if cur.rowcount == 0:
                raise StorageError(f"No message with id {message_id}.")
            conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id ="
                " (SELECT conversation_id FROM messages WHERE id = ?)",
                (now, message_id),
            )

    def supersede_from(self, conversation_id: int, position: int) -> list[int]:
        """Mark current messages at `position` and after as superseded (kept, not shown).

        Used by regenerate and edit-and-resend; returns the ids it marked.
        """
        with self.db.transaction() as conn:
            self._check_writable(conn, conversation_id)
            rows = conn.execute(
                "SELECT id FROM messages WHERE conversation_id = ? AND position >= ?"
                " AND superseded_at IS NULL",
                (conversation_id, position),
            ).fetchall()
            ids = [r[0] for r in rows]
            conn.execute(
                "UPDATE messages SET superseded_at = ? WHERE conversation_id = ? AND position >= ?"
                " AND superseded_at IS NULL",
                (self._clock(), conversation_id, position),
            )
            return ids

    def message_versions(self, message_id: int) -> list[Message]:
        """All versions of a message (itself and its siblings: same parent, same role), oldest first."""
        message = self.get_message(message_id)
        rows = self.db.query(
            "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? AND role = ?"
            " ORDER BY id",
            (message.conversation_id, message.parent_id, message.role),
        )
        return [self.get_message(r["id"]) for r in rows]

    def version_counts(self, conversation_id: int) -> dict[int, tuple[int, int]]:
        """For each message shown that has other versions: (its number from 1, how many)."""
        rows = self.db.query(
            "SELECT id, parent_id, role, superseded_at FROM messages WHERE conversation_id = ?"
            " ORDER BY id",
            (conversation_id,),
        )
        groups: dict[tuple[int | None, str], list[int]] = {}
        for row in rows:
            groups.setdefault((row["parent_id"], row["role"]), []).append(row["id"])
        current = {row["id"] for row in rows if row["superseded_at"] is None}
        counts = {}
        for ids in groups.values():
            if len(ids) > 1:
                for index, message_id in enumerate(ids):
                    if message_id in current:
                        counts[message_id] = (index + 1, len(ids))
        return counts

    def switch_version(self, message_id: int) -> list[int]:
        """Show the branch through `message_id`: its ancestors, itself, and below it the
        branch that was shown last; the branch shown before is kept, superseded. Returns the
        ids now shown, in order."""
        message = self.get_message(message_id)
        with self.db.transaction() as conn:
            self._check_writable(conn, message.conversation_id)
            path = [message_id]
            parent = message.parent_id
            while parent is not None:
                path.insert(0, parent)
                parent = conn.execute(
                    "SELECT parent_id FROM messages WHERE id = ?", (parent,)
                ).fetchone()[0]
            while True:  # down: the child shown most recently (superseded last), else the newest
                row = conn.execute(
                    "SELECT id FROM messages WHERE parent_id = ? ORDER BY superseded_at IS NULL"
                    " DESC, superseded_at DESC, id DESC LIMIT 1",
                    (path[-1],),
                ).fetchone()
                if row is None:
                    break
                path.append(row[0])
            marks = ",".join("?" * len(path))
            conn.execute(
                f"UPDATE messages SET superseded_at = ? WHERE conversation_id = ?"
                f" AND superseded_at IS NULL AND id NOT IN ({marks})",
                (self._clock(), message.conversation_id, *path),
            )
            conn.execute(f"UPDATE messages SET superseded_at = NULL WHERE id IN ({marks})", path)
        return path

    def recover_interrupted(self, *, stale_after_s: float = STALE_STREAMING_S) -> list[int]:
        """Mark `streaming` messages nobody has written for `stale_after_s` as `error` (text kept).

        Run at startup: these belong to a process that crashed or was killed. A message
        another live process is still streaming is touched every flush and so is left alone.
        """
        cutoff = self._clock() - stale_after_s
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id FROM messages WHERE status = 'streaming' AND updated_at <= ?", (cutoff,)
            ).fetchall()
            ids = [r[0] for r in rows]
            conn.execute(
                "UPDATE messages SET status = 'error', error = ? WHERE status = 'streaming'"
                " AND updated_at <= ?",
                (INTERRUPTED, cutoff),
            )
            return ids

    # -- search -------------------------------------------------------------------------

    def search(self, text: str, *, limit: int = 50) -> list[SearchHit]:
        """Full-text search (FTS5) over message text and titles of conversations not in the trash.

        Every word must match (as a prefix: "mount" finds "mountain"); best matches first.
        """
        query = fts_query(text)
        if not query:
            return []
        rows = self.db.query(
            "SELECT m.id AS message_id, m.conversation_id, c.title,"
            " snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet, bm25(messages_fts) AS rank"
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? AND c.deleted_at IS NULL AND m.superseded_at IS NULL"
            " ORDER BY rank LIMIT ?",
            (query, limit),
        )
        hits = [
            SearchHit(r["conversation_id"], r["title"], r["message_id"], r["snippet"], r["rank"])
            for r in rows
        ]
        # Titles are few and short: a plain case-insensitive match on each word is enough.
        words = re.findall(r"\w+", text, flags=re.UNICODE)
        seen = {h.conversation_id for h in hits}
        for conv in self.list_conversations():
            if (
                conv.id not in seen
                and words
                and all(w.lower() in conv.title.lower() for w in words)
            ):
                hits.insert(0, SearchHit(conv.id, conv.title, None, conv.title, float("-inf")))
        return hits[:limit]
