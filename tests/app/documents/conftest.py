"""Fixtures for the document tests (generators in tests/app/document_sources.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.app.document_sources import WordCounter, filler, write_pdf


@pytest.fixture
def count_words() -> WordCounter:
    return WordCounter()


@pytest.fixture(scope="session")
def long_pdf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """A 300-page PDF with one planted fact: (path, its page, the fact)."""
    rng = random.Random(7)
    fact_page = 217
    fact = "The vault access code for the Nightingale project is 4471."
    pages = []
    for number in range(1, 301):
        text = filler(rng)
        if number == fact_page:
            text += "\n" + fact
        pages.append(f"Page {number}\n{text}")
    path = tmp_path_factory.mktemp("pdf") / "manual.pdf"
    return write_pdf(path, pages), fact_page, fact
