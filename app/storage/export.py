"""Export a conversation to Markdown (to read or share) or JSON (to back up), and import JSON back.

The JSON form (`FORMAT`, version `FORMAT_VERSION`) holds the conversation, its current
messages with roles, text, thinking, tool calls/results, stats and attachment references
(sha256, kind, file name). With `embed_media=True` the media files travel inside it
(base64), so the import works on another machine; otherwise media are found by hash in
the target store, and a missing one is named in the message instead of failing the import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.storage.conversations import (
    ROLES,
    Conversation,
    ConversationStore,
    Message,
    NewMessage,
)
from app.storage.media import SHA256_PATTERN, MediaPathError, MediaStore, normalize_extension
from mlx_model.events import GenerationStats

log = logging.getLogger(__name__)

FORMAT = "gemma-desk.conversation"
FORMAT_VERSION = 1
ROLE_TITLES = {"user": "You", "assistant": "Gemma", "system": "System", "tool": "Tool"}


class ImportFormatError(ValueError):
    """The file is not a Gemma Desk conversation export; the message says what is wrong."""


# -- Markdown ---------------------------------------------------------------------------


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def to_markdown(conversation: Conversation, messages: list[Message]) -> str:
    """The conversation as Markdown: a heading per message, thinking folded, media named."""
    lines = [f"# {conversation.title or 'Untitled conversation'}", ""]
    if conversation.system_prompt:
        lines += ["> **System prompt:** " + conversation.system_prompt.replace("\n", "\n> "), ""]
    for m in messages:
        lines.append(f"## {ROLE_TITLES.get(m.role, m.role)}")
        lines.append("")
        for a in m.attachments:
            lines.append(f"*Attachment ({a.kind}):* `{a.filename or a.sha256[:12]}`  ")
        if m.attachments:
            lines.append("")
        if m.thinking:
            lines += [
                "<details><summary>Thinking</summary>",
                "",
                m.thinking.strip(),
                "",
                "</details>",
                "",
            ]
        if m.role == "tool" and m.tool_result:
            call = m.tool_result.get("call", {})
            body = m.tool_result.get("error") or m.tool_result.get("result")
            lines.append(f"Result of `{call.get('name', '?')}`:")
            lines.append("")
            lines.append(
                _fence(json.dumps(body, ensure_ascii=False, indent=2, default=str), "json")
            )
            lines.append("")
        if m.text:
            lines += [m.text.strip(), ""]
        for call in m.tool_calls:
            args = json.dumps(call.get("arguments", {}), ensure_ascii=False, indent=2)
            lines += [f"Tool call `{call.get('name', '?')}`:", "", _fence(args, "json"), ""]
        if m.status == "error" and m.error:
            lines += [f"*⚠ {m.error}*", ""]
    return "\n".join(lines).rstrip() + "\n"


# -- JSON -------------------------------------------------------------------------------


def to_json_data(
    conversation: Conversation,
    messages: list[Message],
    media: MediaStore | None = None,
    *,
    embed_media: bool = False,
) -> dict[str, Any]:
    """The conversation as JSON-ready data (see module docstring)."""
    out_messages = []
    embedded: dict[str, dict[str, Any]] = {}
    for m in messages:
        out_messages.append(
            {
                "role": m.role,
                "text": m.text,
                "thinking": m.thinking,
                "tool_calls": m.tool_calls,
                "tool_result": m.tool_result,
                "stats": m.stats,
                "status": m.status,
                "error": m.error,
                "created_at": m.created_at,
                "attachments": [
                    {"sha256": a.sha256, "kind": a.kind, "filename": a.filename}
                    for a in m.attachments
                ],
            }
        )
        if embed_media and media is not None:
            for a in m.attachments:
                record = media.find(a.sha256)
                if record is not None and a.sha256 not in embedded and record.path.exists():
                    embedded[a.sha256] = {
                        "kind": record.kind,
                        "mime": record.mime,
                        "ext": record.path.suffix,
                        "data": base64.b64encode(record.path.read_bytes()).decode("ascii"),
                    }
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "conversation": {
            "uuid": conversation.uuid,
            "title": conversation.title,
            "system_prompt": conversation.system_prompt,
            "model": conversation.model,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
        },
        "messages": out_messages,
    }
    if embedded:
        data["media"] = embedded
    return data


def export_markdown(store: ConversationStore, conversation_id: int, path: str | Path) -> Path:
    """Write the conversation's current messages as Markdown to `path`."""
    path = Path(path)
    path.write_text(
        to_markdown(store.get_conversation(conversation_id), store.messages(conversation_id)),
        encoding="utf-8",
    )
    return path


def export_json(
    store: ConversationStore,
    conversation_id: int,
    path: str | Path,
    media: MediaStore | None = None,
    *,
    embed_media: bool = False,
) -> Path:
    """Write the conversation as JSON to `path` (media embedded if asked)."""
    path = Path(path)
    data = to_json_data(
        store.get_conversation(conversation_id),
        store.messages(conversation_id),
        media,
        embed_media=embed_media,
    )
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# -- import -----------------------------------------------------------------------------

MEDIA_KINDS = ("image", "audio", "video", "document")
IMPORT_CHUNK = 500  # messages per import transaction
IMPORT_PAUSE_S = 0.02  # between import transactions, so another writer gets its turn
IMPORTING_DELETED_AT = 0.0  # a conversation being imported waits in the trash, dated 1970
MAX_NESTING = 64  # tool arguments/results and stats deeper than this are refused
# Timestamps are seconds since 1970; anything outside 1970..3000 is not a real date.
_LATEST_TIMESTAMP = 32_503_680_000.0


def _where(index: int | None, field: str) -> str:
    return f"message {index + 1}, '{field}'" if index is not None else f"'{field}'"


def _optional_text(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ImportFormatError(f"The export is damaged: {where} must be text.")


def _timestamp(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= _LATEST_TIMESTAMP
    ):
        raise ImportFormatError(
            f"The export is damaged: {where} must be a date (seconds since 1970)."
        )
    return float(value)


def _nesting(value: Any, limit: int = MAX_NESTING) -> int:
    """How deeply lists/objects nest in `value`, stopping once past `limit` (no recursion)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _shallow(value: Any, where: str) -> Any:
    if _nesting(value) > MAX_NESTING:
        raise ImportFormatError(
            f"The export is damaged: {where} nests deeper than {MAX_NESTING} levels."
        )
    return value


def _call(value: Any, where: str) -> dict[str, Any]:
    """One tool call `{id, name, arguments}` as stored."""
    if not isinstance(value, dict):
        raise ImportFormatError(f"The export is damaged: {where} must be an object.")
    name, call_id = value.get("name"), value.get("id", "")
    arguments = value.get("arguments", {})
    if not isinstance(name, str) or not isinstance(call_id, (str, type(None))):
        raise ImportFormatError(f"The export is damaged: {where} needs a text 'name' and 'id'.")
    if not isinstance(arguments, dict):
        raise ImportFormatError(f"The export is damaged: {where}.arguments must be an object.")
    return {"id": call_id or "", "name": name, "arguments": _shallow(arguments, where)}


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise ImportFormatError(f"The export is damaged: {where} must be a list.")
    return [_call(call, f"{where}[{i + 1}]") for i, call in enumerate(value)]


def _tool_result(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ImportFormatError(f"The export is damaged: {where} must be an object.")
    error = _optional_text(value.get("error"), f"{where}.error")
    return {
        "call": _call(value.get("call") or {"name": ""}, f"{where}.call"),
        "result": _shallow(value.get("result"), f"{where}.result"),
        "error": error,
    }


def _stats(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ImportFormatError(f"The export is damaged: {where} must be an object.")
    defaults = GenerationStats()
    for name, default in vars(defaults).items():
        if name not in value:
            continue
        item = value[name]
        if isinstance(default, (int, float)):
            ok = (
                isinstance(item, (int, float))
                and not isinstance(item, bool)
                and math.isfinite(item)
            )
        else:
            ok = isinstance(item, type(default))
        if not ok:
            raise ImportFormatError(
                f"The export is damaged: {where}.{name} must be {type(default).__name__}."
            )
    return _shallow(value, where)


def _attachments(value: Any, where: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportFormatError(f"The export is damaged: {where} must be a list.")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i + 1}]"
        if not isinstance(item, dict):
            raise ImportFormatError(f"The export is damaged: {at} must be an object.")
        sha, kind = item.get("sha256"), item.get("kind")
        filename = item.get("filename") or ""
        if not isinstance(sha, str) or not SHA256_PATTERN.fullmatch(sha):
            raise ImportFormatError(f"The export is damaged: {at}.sha256 is not a sha256 hash.")
        if kind not in MEDIA_KINDS or not isinstance(filename, str):
            raise ImportFormatError(
                f"The export is damaged: {at} needs a kind ({', '.join(MEDIA_KINDS)}) and a text filename."
            )
        out.append({"sha256": sha, "kind": kind, "filename": filename})
    return out


@dataclass(frozen=True)
class _EmbeddedMedia:
    sha256: str
    kind: str
    mime: str
    ext: str
    data: bytes


def _embedded_media(value: Any) -> list[_EmbeddedMedia]:
    """The `media` section, decoded and each checked against its hash (nothing written)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ImportFormatError("The export is damaged: 'media' must be an object.")
    out = []
    for sha, item in value.items():
        shown = f"An embedded media file ({str(sha)[:12]}…)"
        if not isinstance(sha, str) or not SHA256_PATTERN.fullmatch(sha):
            raise ImportFormatError(f"{shown} is not named by a sha256 hash.")
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise ImportFormatError(f"{shown} has no base64 'data'.")
        kind, mime = item.get("kind"), item.get("mime", "application/octet-stream")
        if kind not in MEDIA_KINDS or not isinstance(mime, str) or len(mime) > 100:
            raise ImportFormatError(
                f"{shown} needs a kind ({', '.join(MEDIA_KINDS)}) and a MIME type."
            )
        try:
            ext = normalize_extension(item.get("ext") or "")
        except MediaPathError as exc:
            raise ImportFormatError(f"{shown}: {exc}") from exc
        try:
            data = base64.b64decode(item["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImportFormatError(f"{shown} is damaged: {exc}.") from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise ImportFormatError(f"{shown} does not match its checksum.")
        out.append(_EmbeddedMedia(sha, kind, mime, ext, data))
    return out


@dataclass(frozen=True)
class ImportPlan:
    """A checked export: what `import_json_data` will write (nothing is written to check it)."""

    title: str
    system_prompt: str | None
    model: str
    uuid: str | None
    created_at: float | None
    messages: list[dict[str, Any]]
    media: list[_EmbeddedMedia]


def parse_export(data: Any) -> ImportPlan:
    """Check a whole export up front; `ImportFormatError` names the first problem."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportFormatError(
            "This is not a Gemma Desk conversation export (the 'format' field is missing or wrong)."
        )
    version = data.get("version")
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= FORMAT_VERSION
    ):
        raise ImportFormatError(
            f"This export has format version {version!r}; this app reads up to version {FORMAT_VERSION}. Update the app."
        )
    conv = data.get("conversation")
    messages = data.get("messages")
    if not isinstance(conv, dict) or not isinstance(messages, list):
        raise ImportFormatError("The export has no 'conversation' object or no 'messages' list.")
    uuid = conv.get("uuid")
    checked: list[dict[str, Any]] = []
    for index, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ImportFormatError(f"Message {index + 1} has no valid 'role'.")
        status = m.get("status")
        if status not in (None, "done", "error", "streaming"):
            raise ImportFormatError(
                f"The export is damaged: {_where(index, 'status')} must be done or error."
            )
        checked.append(
            {
                "role": m["role"],
                "text": _optional_text(m.get("text"), _where(index, "text")) or "",
                "thinking": _optional_text(m.get("thinking"), _where(index, "thinking")) or "",
                "tool_calls": _tool_calls(m.get("tool_calls"), _where(index, "tool_calls")),
                "tool_result": _tool_result(m.get("tool_result"), _where(index, "tool_result")),
                "stats": _stats(m.get("stats"), _where(index, "stats")),
                # A message exported mid-stream is imported as finished (nothing streams it).
                "status": "error" if status == "error" else "done",
                "error": _optional_text(m.get("error"), _where(index, "error")),
                "created_at": _timestamp(m.get("created_at"), _where(index, "created_at")),
                "attachments": _attachments(m.get("attachments"), _where(index, "attachments")),
            }
        )
    title = _optional_text(conv.get("title"), "'conversation.title'")
    return ImportPlan(
        title=title or "",
        system_prompt=_optional_text(conv.get("system_prompt"), "'conversation.system_prompt'"),
        model=_optional_text(conv.get("model"), "'conversation.model'") or "",
        uuid=uuid if isinstance(uuid, str) and 0 < len(uuid) <= 100 else None,
        created_at=_timestamp(conv.get("created_at"), "'conversation.created_at'"),
        messages=checked,
        media=_embedded_media(data.get("media")),
    )


def import_json_data(
    data: Any,
    store: ConversationStore,
    media: MediaStore | None = None,
    *,
    chunk_size: int = IMPORT_CHUNK,
) -> Conversation:
    """Create a conversation from exported data; returns it.

    The whole export is checked first (`parse_export`): a bad one raises `ImportFormatError`
    and changes nothing. The messages are then written `chunk_size` at a time, each chunk
    its own short transaction, so other writers (the GUI, a chat in the terminal) never
    wait long. Until the last chunk commits, the new conversation is hidden in the trash,
    dated 1970 (so a crash mid-import leaves nothing visible and the next start's trash
    purge removes it); if a chunk fails, the conversation and the media files the import
    added are removed again. If a conversation with the same uuid exists, the import
    becomes a copy with a new uuid (an import never overwrites anything).
    """
    plan = parse_export(data)
    rows = _message_rows(plan, media)
    created_files: list[Path] = []
    created_media: list[str] = []
    conversation_id: int | None = None
    try:
        with store.db.transaction() as conn:
            uuid = plan.uuid
            if uuid and store.find_conversation_by_uuid(uuid) is not None:
                uuid = None
            for item in plan.media if media is not None else []:
                target = media.path_for(item.sha256, item.ext)
                new_file = not target.exists()
                if media.find(item.sha256) is None:
                    created_media.append(item.sha256)
                media.add_bytes(item.data, kind=item.kind, mime=item.mime, ext=item.ext)
                if new_file:
                    created_files.append(target)
            conversation_id = store.create_conversation(
                plan.title,
                system_prompt=plan.system_prompt,
                model=plan.model,
                uuid=uuid,
                created_at=plan.created_at,
            ).id
            conn.execute(
                "UPDATE conversations SET deleted_at = ? WHERE id = ?",
                (IMPORTING_DELETED_AT, conversation_id),
            )
            store.append_messages(conversation_id, rows[:chunk_size])
        for start in range(chunk_size, len(rows), chunk_size):
            time.sleep(IMPORT_PAUSE_S)  # let a waiting writer in between chunks
            store.append_messages(conversation_id, rows[start : start + chunk_size])
        with store.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE conversations SET deleted_at = NULL WHERE id = ? AND deleted_at = ?",
                (conversation_id, IMPORTING_DELETED_AT),
            )
            if cur.rowcount != 1:
                raise ImportFormatError("The conversation was removed while it was imported.")
    except BaseException:
        _undo_import(store, media, conversation_id, created_media, created_files)
        raise
    return store.get_conversation(conversation_id)


def _message_rows(plan: ImportPlan, media: MediaStore | None) -> list[NewMessage]:
    embedded = {item.sha256 for item in plan.media} if media is not None else set()
    wanted = sorted({a["sha256"] for m in plan.messages for a in m["attachments"]})
    known = embedded | {s for s in wanted if media is not None and media.find(s) is not None}
    rows = []
    for m in plan.messages:
        refs, missing = [], []
        for a in m["attachments"]:
            if a["sha256"] in known:
                refs.append((a["sha256"], a["kind"], a["filename"]))
            else:
                missing.append(a["filename"] or a["sha256"][:12])
        text = m["text"] + "".join(
            f"\n\n[attachment not available on this computer: {name}]" for name in missing
        )
        fields = {k: v for k, v in m.items() if k not in ("attachments", "text")}
        rows.append(NewMessage(text=text, attachments=tuple(refs), **fields))
    return rows


def _undo_import(
    store: ConversationStore,
    media: MediaStore | None,
    conversation_id: int | None,
    created_media: list[str],
    created_files: list[Path],
) -> None:
    """Remove what a failed import wrote (its hidden conversation, the media it added)."""
    try:
        with store.db.transaction() as conn:
            if conversation_id is not None:
                conn.execute(
                    "DELETE FROM conversations WHERE id = ? AND deleted_at = ?",
                    (conversation_id, IMPORTING_DELETED_AT),
                )
            conn.executemany(
                "DELETE FROM media WHERE sha256 = ? AND NOT EXISTS"
                " (SELECT 1 FROM attachments a WHERE a.sha256 = media.sha256)",
                [(sha,) for sha in created_media],
            )
    except Exception:  # the database itself failed: the next start's housekeeping cleans up
        log.exception("could not undo a failed import")
        return
    for path in created_files:
        if media is not None and media.find(path.name.split(".")[0]) is None:
            path.unlink(missing_ok=True)


def import_json(
    path: str | Path, store: ConversationStore, media: MediaStore | None = None
) -> Conversation:
    """Import a conversation from a JSON export file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ImportFormatError(f"The file “{path.name}” could not be found.") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFormatError(f"The file “{path.name}” is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise ImportFormatError(f"The file “{path.name}” nests too deeply to read.") from exc
    except OSError as exc:
        raise ImportFormatError(f"The file “{path.name}” cannot be read: {exc.strerror}.") from exc
    return import_json_data(data, store, media)
