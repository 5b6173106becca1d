"""Documents as attachments: how they are stored, and read again for a prompt.

A file is stored as it came (the media store keeps its bytes under their hash, kind
"document"); it is read again with `app.documents.load_document` each time a prompt needs
it (page images at the message's image budget), through a small cache. A folder cannot be
stored as one file, so what was read of it (the files `.gitignore` lets in, as chunks) is
stored as a JSON snapshot (`CODEBASE_MIME`): the codebase the user attached, as it was then.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from app.documents import Chunk, Document, DocumentOptions, load_document
from app.documents.errors import CorruptDocumentError

CODEBASE_MIME = "application/vnd.gemma-desk.codebase+json"
SNAPSHOT_FORMAT = "gemma-desk-codebase/1"
MIMES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text": "text/plain",
    "markdown": "text/markdown",
    "code": "text/plain",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "html": "text/html",
    "codebase": CODEBASE_MIME,
}
CACHE_ENTRIES = 8


def snapshot(document: Document) -> bytes:
    """A codebase document as JSON bytes (what is stored for a folder)."""
    body = {
        "format": SNAPSHOT_FORMAT,
        "name": document.name,
        "kind": document.kind,
        "line_count": document.line_count,
        "files": document.files,
        "skipped": document.skipped,
        "chunks": [
            {"text": c.text, "label": c.label, "lines": c.lines, "path": c.path}
            for c in document.chunks
        ],
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def from_snapshot(data: bytes, name: str | None = None) -> Document:
    """The codebase document a snapshot holds."""
    try:
        body = json.loads(data.decode("utf-8"))
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown snapshot format {body.get('format')!r}")
        chunks = [
            Chunk(
                c["text"],
                c["label"],
                lines=tuple(c["lines"]) if c.get("lines") else None,
                path=c.get("path"),
            )  # fmt: skip
            for c in body["chunks"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptDocumentError(
            f"The stored copy of the folder “{name or 'folder'}” is damaged: {exc}."
        ) from exc
    return Document(
        name=name or body.get("name", "folder"),
        kind=body.get("kind", "codebase"),
        chunks=chunks,
        line_count=body.get("line_count"),
        files=list(body.get("files", [])),
        skipped=list(body.get("skipped", [])),
    )


class DocumentCache:
    """The last few documents read for prompts (a long PDF is read once per conversation,
    not once per message)."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[Any, Document] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, part: dict[str, Any], options: DocumentOptions) -> Document:
        """The document of a content part: `{"type": "document", "path" | "data" | "document",
        "name", "mime"}` (`data`: its bytes; `document`: already read, e.g. by the server)."""
        name = part.get("name") or Path(str(part.get("path", "document"))).name
        if isinstance(part.get("document"), Document):  # already read (an API request's)
            return part["document"]
        data = part.get("data")
        if data is not None:
            return document_from_bytes(bytes(data), name, part.get("mime", ""), options)
        path = Path(part["path"])
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, name, options.image_budget)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        if part.get("mime") == CODEBASE_MIME:
            document = from_snapshot(path.read_bytes(), name)
        else:
            document = load_document(path, name=name, options=options)
        with self._lock:
            self._items[key] = document
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return document


def document_from_bytes(
    data: bytes, name: str, mime: str = "", options: DocumentOptions | None = None
) -> Document:
    """A document from its bytes (an API request's `file` part); typed errors as from a file."""
    if mime == CODEBASE_MIME:
        return from_snapshot(data, name)
    suffix = Path(name).suffix if len(Path(name).suffix) <= 12 else ""
    with tempfile.TemporaryDirectory(prefix="gemma-desk-doc-") as tmp:
        path = Path(tmp) / f"document{suffix}"
        path.write_bytes(data)
        return load_document(path, name=name, options=options)


DOCUMENTS = DocumentCache()
