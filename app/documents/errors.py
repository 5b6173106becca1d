"""Typed errors for documents the app cannot use, with messages written for people.

They extend the media path's `MediaError` family (`mlx_model.processing.errors`), so code that
shows `str(error)` for a bad attachment shows these the same way; `kind` names the case.
"""

from __future__ import annotations

from mlx_model.processing.errors import CorruptMediaError, MediaError, MediaTooLargeError


class DocumentError(MediaError):
    """A document could not be used. `str(error)` is a sentence fit for the UI."""

    kind = "document"


class UnsupportedDocumentError(DocumentError):
    """Not a kind of document we read (and not media either)."""

    kind = "unsupported"


class CorruptDocumentError(DocumentError, CorruptMediaError):
    """The file claims a supported format but cannot be read (damaged, truncated)."""

    kind = "corrupt"


class EncryptedDocumentError(DocumentError):
    """The document is protected by a password."""

    kind = "encrypted"


class EmptyDocumentError(DocumentError, CorruptMediaError):
    """The document has no pages, or no text and nothing to show as a page image."""

    kind = "empty"


class BinaryFileError(DocumentError):
    """A file that should be text (by its name) holds binary data."""

    kind = "binary"


class DocumentTooLargeError(DocumentError, MediaTooLargeError):
    """Over a size limit (bytes, pages, files in a folder), checked before reading."""

    kind = "too_large"


class ZipBombError(DocumentTooLargeError):
    """A DOCX (a zip archive) that would expand far beyond its size."""

    kind = "zip_bomb"


def format_bytes(size: int) -> str:
    """`2.0 GB`, `64 MB`, `12 KB` (binary units, as the media errors write them)."""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GB"
    if size >= 2**20:
        return f"{size / 2**20:.0f} MB"
    return f"{max(1, size // 2**10)} KB"
