"""DOCX through python-docx: paragraphs and tables in body order, after a zip-bomb check.

A DOCX is a zip archive. Before python-docx opens it, the archive's directory is checked:
the declared uncompressed sizes (which zipfile enforces while reading) must stay under a
total and a compression ratio, and the entries under a count, so a few kilobytes cannot
expand into gigabytes of XML.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .errors import CorruptDocumentError, EmptyDocumentError, ZipBombError, format_bytes
from .model import Document, chunk_lines, line_range

MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
MAX_RATIO = 100  # uncompressed / compressed, over the whole archive
MAX_ENTRIES = 10_000


def check_zip(
    path: Path,
    name: str,
    *,
    max_uncompressed: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_RATIO,
    max_entries: int = MAX_ENTRIES,
) -> None:
    """Raise `ZipBombError` for an archive that would expand too far, `CorruptDocumentError` for a broken one."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptDocumentError(
            f"“{name}” is damaged or not a Word document (.docx) we can read.", source=str(path)
        ) from exc
    expanded = sum(e.file_size for e in entries)
    packed = max(1, sum(e.compress_size for e in entries))
    if len(entries) > max_entries or expanded > max_uncompressed or expanded / packed > max_ratio:
        raise ZipBombError(
            f"“{name}” would expand from {format_bytes(path.stat().st_size)} to "
            f"{format_bytes(expanded)} in {len(entries):,} parts, which is not what a Word document "
            f"does (limits: {format_bytes(max_uncompressed)}, {max_ratio:g}× compression); it was "
            "not opened.",
            source=str(path),
            limit=f"{max_uncompressed} bytes",
        )


def read_docx(path: str | os.PathLike[str], *, name: str | None = None) -> Document:
    """Read a DOCX: one line per paragraph (tables as `a | b | c` rows), chunked by paragraphs."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    path = Path(path)
    name = name or path.name
    check_zip(path, name)
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptDocumentError(
            f"“{name}” is damaged or not a Word document (.docx) we can read.", source=str(path)
        ) from exc
    except Exception as exc:  # noqa: BLE001 - lxml's XMLSyntaxError and friends
        raise CorruptDocumentError(f"“{name}” is damaged: {exc}.", source=str(path)) from exc
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text
            style = (block.style.name or "") if block.style is not None else ""
            if style.startswith("Heading") and style[7:].strip().isdigit() and text.strip():
                text = "#" * int(style[7:].strip()) + " " + text
            elif style.startswith("List") and text.strip():
                text = "- " + text
            lines.append(text)
        elif isinstance(block, Table):
            for row in block.rows:
                lines.append(" | ".join(cell.text.replace("\n", " ") for cell in row.cells))
            lines.append("")
    if not any(line.strip() for line in lines):
        raise EmptyDocumentError(f"“{name}” contains no text.", source=str(path))
    chunks = chunk_lines(lines, lambda a, b: line_range(a, b, "paragraphs"))
    return Document(name=name, kind="docx", chunks=chunks, line_count=len(lines), source=str(path))
