"""`load_document(path)`: pick the reader for a file or folder by its content, then its name.

PDF and DOCX are recognised by their bytes (`%PDF-`, a zip holding `word/document.xml`);
anything else is read as text (plain, Markdown, code, CSV/TSV, HTML by extension, shebang or
doctype) and refused as binary when it is not. A folder is read as one codebase.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlx_model.processing.errors import CorruptMediaError, MediaError

from .errors import UnsupportedDocumentError
from .folder import FolderLimits, read_folder
from .model import Document
from .pdf import read_pdf
from .text import MAX_TEXT_BYTES, read_text_file
from .word import read_docx

DOCUMENT_DESCRIPTION = "PDF, Word (.docx), text, Markdown, source code, CSV/TSV or HTML"


@dataclass(frozen=True)
class DocumentOptions:
    """How documents are read: the image budget for scanned pages and the size limits.

    `patch_size` / `pooling_kernel_size` come from the checkpoint's image processor config
    (`ProcessorConfig`); `image_budget` is the budget the user chose (or the checkpoint's).
    """

    image_budget: int = 280
    patch_size: int = 16
    pooling_kernel_size: int = 3
    max_text_bytes: int = MAX_TEXT_BYTES
    max_pdf_pages: int = 5000
    folder: FolderLimits = FolderLimits()

    @classmethod
    def from_processor_config(cls, config, image_budget: int | None = None) -> DocumentOptions:
        """Options for a checkpoint's `mlx_model.processing.ProcessorConfig`."""
        return cls(
            image_budget=image_budget or config.image_budget,
            patch_size=config.patch_size,
            pooling_kernel_size=config.pooling_kernel_size,
        )


def document_kind(path: str | os.PathLike[str]) -> str | None:
    """ "folder", "pdf", "docx" or "text" from the content (None: unreadable or a zip that is not a DOCX)."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            # a damaged Word document still gets the Word reader's message
            return "docx" if path.suffix.lower() in (".docx", ".docm", ".dotx") else None
        return "docx" if "word/document.xml" in names else None
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return None  # OLE2: legacy .doc/.xls
    return "text"


def load_document(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    options: DocumentOptions | None = None,
) -> Document:
    """Read a document or folder; raises a typed `DocumentError` (a `MediaError`) when it cannot."""
    path = Path(path)
    options = options or DocumentOptions()
    name = name or path.name or str(path)
    if not path.exists():
        raise MediaError(f"“{name}” could not be found.", source=str(path))
    kind = document_kind(path)
    if kind == "folder":
        return read_folder(path, name=name, limits=options.folder)
    if path.stat().st_size == 0:
        raise CorruptMediaError(f"“{name}” is empty (0 bytes).", source=str(path))
    if kind == "pdf":
        return read_pdf(
            path,
            name=name,
            image_budget=options.image_budget,
            patch_size=options.patch_size,
            pooling_kernel_size=options.pooling_kernel_size,
            max_pages=options.max_pdf_pages,
        )
    if kind == "docx":
        return read_docx(path, name=name)
    if kind is None:
        hint = " (save it as .docx)" if path.suffix.lower() in (".doc", ".xls", ".ppt") else ""
        raise UnsupportedDocumentError(
            f"“{name}” is not a kind of document we can read{hint}; attach {DOCUMENT_DESCRIPTION}.",
            source=str(path),
        )
    return read_text_file(path, name=name, max_bytes=options.max_text_bytes)
