"""Export a conversation to Markdown (to read or share) or JSON (to back up), and import JSON back.

The JSON form (`FORMAT`, version `FORMAT_VERSION`) holds the conversation, its current
messages with roles, text, thinking, tool calls/results, stats and attachment references
(sha256, kind, file name). With `embed_media=True` the media files travel inside it
(base64), so the import works on another machine; otherwise media are found by hash in
the target store, and a missing one is named in the message instead of failing the import.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from app.storage.conversations import Conversation, ConversationStore, Message
from app.storage.media import MediaStore

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


def import_json_data(
    data: Any, store: ConversationStore, media: MediaStore | None = None
) -> Conversation:
    """Create a conversation from exported data, in one transaction; returns it.

    If a conversation with the same uuid exists, the import becomes a copy with a new uuid
    (an import never overwrites anything).
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportFormatError(
            "This is not a Gemma Desk conversation export (the 'format' field is missing or wrong)."
        )
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ImportFormatError(
            f"This export has format version {version!r}; this app reads up to version {FORMAT_VERSION}. Update the app."
        )
    conv = data.get("conversation")
    messages = data.get("messages")
    if not isinstance(conv, dict) or not isinstance(messages, list):
        raise ImportFormatError("The export has no 'conversation' object or no 'messages' list.")
    embedded = data.get("media") or {}
    uuid = conv.get("uuid") if isinstance(conv.get("uuid"), str) else None
    if uuid and store.find_conversation_by_uuid(uuid) is not None:
        uuid = None
    # Media first (files are content-addressed: adding them twice is harmless).
    if media is not None:
        for sha, item in embedded.items():
            try:
                record = media.add_bytes(
                    base64.b64decode(item["data"], validate=True),
                    kind=item["kind"],
                    mime=item.get("mime", "application/octet-stream"),
                    ext=item.get("ext", ""),
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise ImportFormatError(
                    f"An embedded media file ({sha[:12]}…) is damaged: {exc}."
                ) from exc
            if record.sha256 != sha:
                raise ImportFormatError(
                    f"An embedded media file ({sha[:12]}…) does not match its checksum."
                )
    with store.db.transaction():
        created = store.create_conversation(
            str(conv.get("title") or ""),
            system_prompt=conv.get("system_prompt"),
            model=str(conv.get("model") or ""),
            uuid=uuid,
            created_at=conv.get("created_at")
            if isinstance(conv.get("created_at"), (int, float))
            else None,
        )
        for index, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in (
                "system",
                "user",
                "assistant",
                "tool",
            ):
                raise ImportFormatError(f"Message {index + 1} has no valid 'role'.")
            refs, missing = [], []
            for a in m.get("attachments") or []:
                sha = a.get("sha256", "")
                if media is not None and media.find(sha) is not None:
                    refs.append((sha, a.get("kind", ""), a.get("filename", "")))
                else:
                    missing.append(a.get("filename") or sha[:12])
            text = str(m.get("text") or "")
            if missing:
                text += "".join(
                    f"\n\n[attachment not available on this computer: {name}]" for name in missing
                )
            status = m.get("status") if m.get("status") in ("done", "error") else "done"
            store.add_message(
                created.id,
                m["role"],
                text,
                thinking=str(m.get("thinking") or ""),
                tool_calls=m.get("tool_calls") or None,
                tool_result=m.get("tool_result"),
                stats=m.get("stats"),
                status=status,
                error=m.get("error"),
                attachments=refs,
                created_at=m.get("created_at")
                if isinstance(m.get("created_at"), (int, float))
                else None,
            )
    return store.get_conversation(created.id)


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
    return import_json_data(data, store, media)
