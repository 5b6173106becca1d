"""Fit or retrieve: whole documents when they fit, else BM25-ranked passages with their pages."""

from __future__ import annotations

from app.documents import fit_or_retrieve, format_pages, load_document
from app.documents.model import token_counter
from tests.app.document_sources import write_pdf


def test_documents_that_fit_go_in_whole(tmp_path, count_words):
    doc = load_document(write_pdf(tmp_path / "short.pdf", ["One page only.", "And another."]))

    selection = fit_or_retrieve([doc], "what is on page two?", 10_000, count_words)

    assert selection.mode == "all" and selection.text() == doc.prompt_text()
    assert selection.note() == ""


def test_retrieval_finds_the_page_with_the_planted_fact(long_pdf, tiny_checkpoint):
    from mlx_model.processing import Tokenizer

    path, fact_page, fact = long_pdf
    count = token_counter(Tokenizer.from_pretrained(tiny_checkpoint))
    doc = load_document(path)
    assert doc.page_count == 300 and len(doc.chunks) == 300

    selection = fit_or_retrieve(
        [doc], "What is the vault access code for Nightingale?", 2_000, count
    )

    assert selection.mode == "retrieved"
    assert (
        selection.pages["manual.pdf"][0] == fact_page or fact_page in selection.pages["manual.pdf"]
    )
    assert fact in selection.text()
    assert f"--- page {fact_page} ---" in selection.text()
    assert selection.tokens <= 2_000 < selection.total_tokens
    assert "manual.pdf: " in selection.note() and str(fact_page) in selection.note()


def test_best_ranked_passage_comes_first_when_only_one_fits(long_pdf, count_words):
    path, fact_page, _ = long_pdf
    doc = load_document(path)
    one_page = count_words(doc.chunks[0].text) + 120

    selection = fit_or_retrieve([doc], "Nightingale vault code", one_page, count_words)

    assert selection.pages == {"manual.pdf": [fact_page]}


def test_question_without_matches_takes_the_beginning(tmp_path, count_words):
    pages = [f"Page {i} talks about apples and pears." for i in range(1, 40)]
    doc = load_document(write_pdf(tmp_path / "fruit.pdf", pages))

    selection = fit_or_retrieve([doc], "zebra", 120, count_words)

    assert selection.mode == "retrieved" and not selection.matched
    assert selection.pages["fruit.pdf"][0] == 1
    assert "from the start" in selection.note()


def test_passages_keep_document_order_and_markers(tmp_path, count_words):
    a = tmp_path / "a.md"
    a.write_text(
        "\n\n".join(f"Section {i} " + "filler " * 300 for i in range(6)) + "\n\nkiwi facts here"
    )
    b = tmp_path / "b.txt"
    b.write_text("kiwi appears here too\n" + "other words\n" * 2000)
    docs = [load_document(a), load_document(b)]

    selection = fit_or_retrieve(docs, "kiwi", 1000, count_words)

    text = selection.text()
    assert text.index("=== a.md") < text.index("=== b.txt")
    assert "kiwi facts here" in text and "kiwi appears here too" in text
    assert set(selection.used) == {"a.md", "b.txt"}


def test_page_runs_are_written_compactly():
    assert format_pages([17, 4, 18, 19]) == "pages 4, 17–19"
    assert format_pages([3]) == "page 3"


def test_room_left_goes_to_the_pages_around_the_match(long_pdf, count_words):
    path, fact_page, _ = long_pdf
    doc = load_document(path)
    nearby = doc.chunks[fact_page - 3 : fact_page + 2]  # pages 215-219
    budget = sum(count_words(c.text) + 10 for c in nearby) + 60

    selection = fit_or_retrieve([doc], "Nightingale vault code", budget, count_words)

    pages = selection.pages["manual.pdf"]
    assert {fact_page - 1, fact_page, fact_page + 1} <= set(pages)
    assert set(pages) <= set(range(fact_page - 2, fact_page + 3))
