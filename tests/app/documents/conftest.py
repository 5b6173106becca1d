"""Fixtures for the document tests (generators in tests/app/document_sources.py; the 300-page
PDF is in tests/app/conftest.py)."""

from __future__ import annotations

import pytest

from tests.app.document_sources import WordCounter


@pytest.fixture
def count_words() -> WordCounter:
    return WordCounter()
