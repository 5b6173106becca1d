"""Documents for the prompt: PDF, DOCX, text/Markdown/code, CSV/TSV, HTML and source folders.

`load_document(path)` reads one into a `Document` (named chunks with page or line markers,
page images for scanned PDF pages); `fit_or_retrieve(documents, question, budget, count)`
decides what of them goes into a prompt. Errors are typed `DocumentError`s (see errors.py).
"""

from .errors import (
    BinaryFileError,
    CorruptDocumentError,
    DocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    UnsupportedDocumentError,
    ZipBombError,
)
from .loader import DOCUMENT_DESCRIPTION, DocumentOptions, document_kind, load_document
from .model import Chunk, Document, PageImage, TokenCounter, token_counter
from .retrieval import ChunkIndex, Selection, fit_or_retrieve, format_pages

__all__ = [
    "DOCUMENT_DESCRIPTION",
    "BinaryFileError",
    "Chunk",
    "ChunkIndex",
    "CorruptDocumentError",
    "Document",
    "DocumentError",
    "DocumentOptions",
    "DocumentTooLargeError",
    "EmptyDocumentError",
    "EncryptedDocumentError",
    "PageImage",
    "Selection",
    "TokenCounter",
    "UnsupportedDocumentError",
    "ZipBombError",
    "document_kind",
    "fit_or_retrieve",
    "format_pages",
    "load_document",
    "token_counter",
]
