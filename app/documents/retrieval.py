"""Fit or retrieve: all of the documents when they fit the token budget, else the passages
most relevant to the question, ranked by SQLite FTS5's BM25 over the documents' chunks.

No extra model: the index is an in-memory FTS5 table (Porter stemming, Unicode words), built
per question. The selection says which pages (or line ranges) it used, so the message can
say so and the answer can cite them; passages keep their markers and document order.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .model import Chunk, Document, TokenCounter, render_blocks

_STOPWORDS = """a an and are as at be but by can could did do does for from had has have how i if in
    into is it its me my no not of on or our should so than that the their them then there
    these they this those to was we were what when where which who whom why will with would
    you your about any all also please tell give show find list say said document file page
    pages"""
STOPWORDS = frozenset(_STOPWORDS.split())


NEIGHBOURS = 2  # chunks on either side of a match added while the budget allows


@dataclass(frozen=True)
class Passage:
    """A chunk chosen for the prompt and where it ranked (0 = most relevant)."""

    document: int  # index into the documents
    chunk: int  # index into that document's chunks
    rank: int


@dataclass
class Selection:
    """What goes into the prompt for a message's documents."""

    mode: Literal["all", "retrieved"]
    blocks: list[dict[str, Any]]  # content blocks: text (with markers) and page images
    tokens: int  # tokens `blocks` take, counted with the model's tokenizer
    total_tokens: int  # tokens all of the documents would take
    used: dict[str, list[str]] = field(default_factory=dict)  # name -> labels, in order
    pages: dict[str, list[int]] = field(default_factory=dict)  # name -> PDF pages used
    matched: bool = True  # retrieved: False when nothing matched the question (leading passages)

    def text(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["type"] == "text")

    def note(self) -> str:
        """One sentence for the message: which passages were used, e.g. `report.pdf: pages 4, 17–19`."""
        if self.mode == "all":
            return ""
        parts = []
        for name, labels in self.used.items():
            pages = self.pages.get(name)
            parts.append(
                f"{name}: {format_pages(pages)}" if pages else f"{name}: {'; '.join(labels)}"
            )
        how = (
            "most relevant to the question"
            if self.matched
            else "from the start (no passage matched the question)"
        )
        return (
            f"The documents are longer than the context allows ({self.total_tokens:,} tokens); "
            f"passages {how} were used: " + "; ".join(parts) + "."
        )


def format_pages(pages: Sequence[int]) -> str:
    """`page 4`, `pages 4, 17–19`."""
    pages = sorted(set(pages))
    runs: list[str] = []
    i = 0
    while i < len(pages):
        j = i
        while j + 1 < len(pages) and pages[j + 1] == pages[j] + 1:
            j += 1
        runs.append(str(pages[i]) if i == j else f"{pages[i]}–{pages[j]}")
        i = j + 1
    return ("page " if len(pages) == 1 else "pages ") + ", ".join(runs)


def query_terms(question: str) -> list[str]:
    """The question's searchable words (lower case, no stop words, each once)."""
    words = re.findall(r"\w+", question.lower())
    seen: dict[str, None] = {}
    for w in words:
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            seen.setdefault(w, None)
    return list(seen)


class ChunkIndex:
    """An in-memory FTS5 index over the chunks of some documents."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        self.db = sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE VIRTUAL TABLE chunks USING fts5("
            "text, label, doc UNINDEXED, chunk UNINDEXED, tokenize='porter unicode61')"
        )
        self.db.executemany(
            "INSERT INTO chunks(text, label, doc, chunk) VALUES (?, ?, ?, ?)",
            (
                (c.text, c.label, d, i)
                for d, doc in enumerate(self.documents)
                for i, c in enumerate(doc.chunks)
            ),
        )

    def search(self, question: str, limit: int | None = None) -> list[Passage]:
        """Chunks matching any of the question's words, best BM25 score first."""
        terms = query_terms(question)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self.db.execute(
            "SELECT doc, chunk FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?",
            (match, -1 if limit is None else limit),
        ).fetchall()
        return [Passage(int(d), int(c), rank) for rank, (d, c) in enumerate(rows)]

    def close(self) -> None:
        self.db.close()


def fit_or_retrieve(
    documents: Sequence[Document],
    question: str,
    budget_tokens: int,
    count: TokenCounter,
) -> Selection:
    """All documents when they fit `budget_tokens`, else the best-ranked passages that fit.

    Retrieved passages are laid out per document in document order under their markers, with a
    note at the top of each document naming what was left out. Page images (scanned pages)
    cannot be searched and go in only with the whole documents.
    """
    whole = [b for d in documents for b in d.content_blocks()]
    total = sum(d.token_count(count) for d in documents)
    if total <= budget_tokens:
        return Selection("all", whole, total, total)
    index = ChunkIndex(documents)
    try:
        ranked = index.search(question)
    finally:
        index.close()
    matched = bool(ranked)
    if not ranked:  # nothing to go by: the documents' beginnings
        ranked = [
            Passage(d, i, 0) for d, doc in enumerate(documents) for i in range(len(doc.chunks))
        ]
    chosen: list[Passage] = []
    taken: set[tuple[int, int]] = set()
    used_tokens = 0

    def take(passage: Passage) -> None:
        nonlocal used_tokens
        doc = documents[passage.document]
        chunk = doc.chunks[passage.chunk]
        cost = count(f"--- {chunk.label} ---\n{chunk.text}\n") + 1
        if not any(p.document == passage.document for p in chosen):
            cost += count(f"{doc.header}\n{_excerpt_note(doc)}\n{doc.footer}\n") + 8
        if used_tokens + cost <= budget_tokens:
            chosen.append(passage)
            taken.add((passage.document, passage.chunk))
            used_tokens += cost

    for passage in ranked:
        take(passage)
    # Room left: the passages around the matches (a table or an argument often runs on),
    # nearest first, around the best-ranked match first.
    matches = list(chosen)
    for distance in range(1, NEIGHBOURS + 1):
        for passage in matches:
            for index in (passage.chunk - distance, passage.chunk + distance):
                size = len(documents[passage.document].chunks)
                if 0 <= index < size and (passage.document, index) not in taken:
                    take(Passage(passage.document, index, len(chosen)))
    while True:
        selection = _selection(documents, chosen, total, count, matched)
        if selection.tokens <= budget_tokens or not chosen:
            return selection
        chosen = chosen[:-1]  # the estimate ran over: drop the least relevant passage


def _excerpt_note(doc: Document) -> str:
    return (
        f"(excerpts: the passages of this {doc.size_label} document most relevant to the question)"
    )


def _selection(
    documents: Sequence[Document],
    chosen: Sequence[Passage],
    total: int,
    count: TokenCounter,
    matched: bool,
) -> Selection:
    by_doc: dict[int, list[int]] = {}
    for p in chosen:
        by_doc.setdefault(p.document, []).append(p.chunk)
    blocks: list[dict[str, Any]] = []
    used: dict[str, list[str]] = {}
    pages: dict[str, list[int]] = {}
    for d in sorted(by_doc):
        doc = documents[d]
        chunks: list[Chunk] = [doc.chunks[i] for i in sorted(by_doc[d])]
        blocks += render_blocks(doc, chunks, (), note=_excerpt_note(doc))
        used[doc.name] = list(dict.fromkeys(c.label for c in chunks))
        page_numbers = [c.page for c in chunks if c.page is not None]
        if page_numbers:
            pages[doc.name] = sorted(set(page_numbers))
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    return Selection("retrieved", blocks, count(text), total, used, pages, matched)
