"""PDF documents: text layer with page numbers, scanned pages as images, typed errors."""

from __future__ import annotations

import pytest

from app.documents import (
    CorruptDocumentError,
    DocumentOptions,
    EmptyDocumentError,
    EncryptedDocumentError,
    load_document,
)
from app.documents.model import token_counter
from mlx_model.processing.image import preprocess_image
from tests.app.document_sources import scanned_page, write_empty_pdf, write_pdf


def test_text_pdf_keeps_each_page_under_its_number(tmp_path):
    path = write_pdf(tmp_path / "memo.pdf", ["Alpha beta gamma.", "Delta epsilon zeta."])

    doc = load_document(path)

    assert doc.kind == "pdf" and doc.page_count == 2 and doc.images == []
    assert [(c.page, c.label) for c in doc.chunks] == [(1, "page 1"), (2, "page 2")]
    text = doc.prompt_text()
    assert text.index("--- page 1 ---") < text.index("Alpha beta gamma.")
    assert text.index("--- page 2 ---") < text.index("Delta epsilon zeta.")
    assert text.startswith("=== memo.pdf (PDF, 2 pages) ===")


def test_scanned_page_becomes_an_image_at_the_chosen_budget(tmp_path):
    pages = ["Typed first page.", scanned_page("A scanned letter"), "Typed third page."]
    path = write_pdf(tmp_path / "mixed.pdf", pages)

    doc = load_document(path, options=DocumentOptions(image_budget=140))

    assert [c.page for c in doc.chunks] == [1, 3]
    (image,) = doc.images
    assert image.page == 2 and image.max_soft_tokens == 140
    # the processor turns the rendered page into exactly the tokens the document counted
    assert preprocess_image(image.image, 140).num_soft_tokens == image.tokens
    blocks = doc.content_blocks()
    kinds = [b["type"] for b in blocks]
    assert kinds == ["text", "image", "text"]
    assert blocks[0]["text"].rstrip().endswith("--- page 2 (scanned: shown as an image) ---")
    assert "Typed third page." in blocks[2]["text"]


def test_pdf_without_text_layer_is_all_page_images(tmp_path):
    path = write_pdf(tmp_path / "scan.pdf", [scanned_page("one"), scanned_page("two")])

    doc = load_document(path)

    assert doc.chunks == [] and [i.page for i in doc.images] == [1, 2]


def test_token_count_adds_page_images_to_the_text(tmp_path, tiny_checkpoint):
    from mlx_model.processing import Tokenizer

    count = token_counter(Tokenizer.from_pretrained(tiny_checkpoint))
    path = write_pdf(tmp_path / "mixed.pdf", ["Some words here.", scanned_page("x")])

    doc = load_document(path)

    assert doc.token_count(count) == count(doc.prompt_text()) + doc.images[0].tokens + 2


def test_encrypted_pdf_is_a_named_error(tmp_path):
    path = write_pdf(tmp_path / "secret.pdf", ["Hidden."], user_password="pw")

    with pytest.raises(EncryptedDocumentError, match="“secret.pdf” is protected by a password"):
        load_document(path)


def test_pdf_with_zero_pages_is_a_named_error(tmp_path):
    with pytest.raises(EmptyDocumentError, match="has no pages"):
        load_document(write_empty_pdf(tmp_path / "blank.pdf"))


def test_truncated_pdf_is_reported_damaged(tmp_path):
    good = write_pdf(tmp_path / "good.pdf", ["Hello there."])
    bad = tmp_path / "cut.pdf"
    bad.write_bytes(good.read_bytes()[:60])

    with pytest.raises(CorruptDocumentError, match="damaged"):
        load_document(bad)
