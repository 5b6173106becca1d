"""DOCX documents: paragraphs and tables in order; the zip-bomb guard."""

from __future__ import annotations

import zipfile

import pytest

from app.documents import CorruptDocumentError, ZipBombError, load_document
from tests.app.document_sources import write_docx


def test_docx_paragraphs_and_tables_in_body_order(tmp_path):
    path = write_docx(
        tmp_path / "notes.docx",
        ["First point about budgets.", "Second point about hiring."],
        table=[["Owner", "Task"], ["Ana", "Ship the beta"]],
    )

    doc = load_document(path)

    text = doc.prompt_text()
    assert doc.kind == "docx"
    assert text.index("# Quarterly notes") < text.index("First point") < text.index("Second point")
    assert "Ana | Ship the beta" in text
    assert doc.chunks[0].label.startswith("paragraphs 1–")


def test_docx_that_expands_enormously_is_refused_unopened(tmp_path):
    path = write_docx(tmp_path / "bomb.docx", ["harmless"])
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", b"\0" * (30 * 1024 * 1024))

    with pytest.raises(ZipBombError, match="“bomb.docx” would expand"):
        load_document(path)


def test_docx_with_a_broken_archive_is_reported_damaged(tmp_path):
    path = write_docx(tmp_path / "broken.docx", ["text"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(CorruptDocumentError):
        load_document(path)
