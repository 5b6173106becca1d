"""Export one chat or all of them to files, and import them back: what File ▸ Export/Import
and `gemma-desk export` / `gemma-desk import` do.

One chat goes to Markdown (to read or share) or to the JSON export of `app.storage.export`
(to back up; `media=True` puts its pictures and recordings inside). All chats go to one
zip holding a JSON export per chat (`conversations/NNNN-title.json`). Import takes a JSON
export or such a zip, checks each export with `app.storage.export`'s import (a damaged one
changes nothing and is named), and never overwrites: an already present chat comes in as
a copy.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.storage.conversations import Conversation, ConversationStore
from app.storage.export import ImportFormatError, import_json_data, to_json_data, to_markdown
from app.storage.media import MediaStore

ExportFormat = Literal["markdown", "json"]
FORMATS: tuple[str, ...] = ("markdown", "json")
SUFFIXES = {"markdown": ".md", "json": ".json"}
ARCHIVE_FOLDER = "conversations"
MAX_IMPORT_BYTES = 2 * 1024**3  # one export inside a zip (media included) at most


@dataclass
class ImportReport:
    """What an import brought in, and what it could not (file or member: why)."""

    imported: list[Conversation] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"Imported {len(self.imported)} chat{'s' if len(self.imported) != 1 else ''}"
        if self.failed:
            text += (
                f"; {len(self.failed)} could not be read ({self.failed[0][0]}: {self.failed[0][1]})"
            )
        return text + "."


def export_conversation(
    store: ConversationStore,
    media: MediaStore,
    conversation_id: int,
    path: str | Path,
    fmt: ExportFormat = "markdown",
    *,
    with_media: bool = False,
) -> Path:
    """Write one chat (the messages shown) as Markdown or JSON to `path`."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    path = Path(path)
    conversation = store.get_conversation(conversation_id)
    messages = store.messages(conversation_id)
    if fmt == "markdown":
        text = to_markdown(conversation, messages)
    else:
        data = to_json_data(conversation, messages, media, embed_media=with_media)
        text = json.dumps(data, ensure_ascii=False, indent=1)
    path.write_text(text, encoding="utf-8")
    return path


def export_all(
    store: ConversationStore, media: MediaStore, path: str | Path, *, with_media: bool = False
) -> tuple[Path, int]:
    """Write every chat not in the trash to one zip of JSON exports; returns it and the count."""
    path = Path(path)
    conversations = store.list_conversations()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, conversation in enumerate(conversations, 1):
            data = to_json_data(
                conversation, store.messages(conversation.id), media, embed_media=with_media
            )
            name = f"{ARCHIVE_FOLDER}/{number:04d}-{file_stem(conversation.title)}.json"
            archive.writestr(name, json.dumps(data, ensure_ascii=False, indent=1))
    return path, len(conversations)


def import_file(store: ConversationStore, media: MediaStore, path: str | Path) -> ImportReport:
    """Import a JSON export or a zip of them; each export comes in whole or not at all."""
    path = Path(path)
    report = ImportReport()
    if not path.is_file():
        report.failed.append((path.name, "the file could not be found"))
        return report
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".json")]
            if not members:
                report.failed.append((path.name, "the zip holds no chat exports (.json)"))
            for member in members:
                if member.file_size > MAX_IMPORT_BYTES:
                    report.failed.append((member.filename, "too large"))
                    continue
                _import_bytes(store, media, archive.read(member), member.filename, report)
        return report
    if path.stat().st_size > MAX_IMPORT_BYTES:
        report.failed.append((path.name, "too large"))
        return report
    _import_bytes(store, media, path.read_bytes(), path.name, report)
    return report


def _import_bytes(
    store: ConversationStore, media: MediaStore, raw: bytes, name: str, report: ImportReport
) -> None:
    try:
        data = json.loads(raw.decode("utf-8"))
        report.imported.append(import_json_data(data, store, media))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.failed.append((name, f"not a JSON export ({exc})"))
    except ImportFormatError as exc:
        report.failed.append((name, str(exc)))


def file_stem(title: str) -> str:
    """A chat title as a file name: one line, no path characters, at most 60 characters."""
    stem = re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", " ", title)
    stem = " ".join(stem.split())[:60].strip(" .")
    return stem or "Chat"
