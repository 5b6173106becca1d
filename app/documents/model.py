"""The document object every reader returns: named chunks with page or line markers, page images.

A `Document` is what goes into the prompt: `prompt_text()` (its name, then each chunk under
its marker, e.g. `--- page 12 ---` or `--- lines 40–79 ---`) and, for PDF pages without a text
layer, page images; `content_blocks()` gives both as chat content blocks in page order.
Chunks are also the unit of retrieval (`app.documents.retrieval`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

TokenCounter = Callable[[str], int]

KIND_NAMES = {
    "pdf": "PDF",
    "docx": "Word document",
    "text": "text",
    "markdown": "Markdown",
    "code": "source code",
    "csv": "CSV table",
    "tsv": "TSV table",
    "html": "HTML page",
    "codebase": "folder of source files",
}
# Chunks close at a paragraph break once they reach this many characters (about 500
# tokens of English), and at the next line past twice that.
CHUNK_CHARS = 2000


def token_counter(tokenizer: Any) -> TokenCounter:
    """Count a text's tokens with the model's tokenizer (anything with `encode(text) -> ids`)."""
    return lambda text: len(tokenizer.encode(text))


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: a page (or part of one), or a range of lines, rows or paragraphs."""

    text: str
    label: str  # the marker shown in the prompt and used to cite it: "page 12", "lines 40–79"
    page: int | None = None  # 1-based page number (PDF)
    lines: tuple[int, int] | None = None  # 1-based, inclusive
    path: str | None = None  # the file inside a folder (codebase)


@dataclass(frozen=True)
class PageImage:
    """A page without a text layer, rendered for the model at an image budget."""

    page: int  # 1-based
    image: Any  # PIL.Image.Image, RGB
    max_soft_tokens: int  # the image budget it was rendered for
    tokens: int  # soft tokens it becomes (≤ max_soft_tokens; depends on the page's shape)

    @property
    def label(self) -> str:
        return f"page {self.page} (scanned: shown as an image)"

    def block(self) -> dict[str, Any]:
        return {"type": "image", "image": self.image, "max_soft_tokens": self.max_soft_tokens}


@dataclass
class Document:
    """A document read for the prompt; see the module docstring."""

    name: str  # what the user knows it by (file or folder name)
    kind: str  # a key of KIND_NAMES
    chunks: list[Chunk]
    page_count: int | None = None  # PDF pages
    line_count: int | None = None  # text lines, table rows or paragraphs
    images: list[PageImage] = field(default_factory=list)
    source: str | None = None  # the path it was read from
    language: str | None = None  # source code: the language by extension or shebang
    encoding: str | None = None  # text files: the encoding it was decoded from
    files: list[str] = field(default_factory=list)  # codebase: the files included
    skipped: list[str] = field(default_factory=list)  # codebase: files left out, with why
    _counts: dict[Any, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def size_label(self) -> str:
        """`300 pages`, `1,204 lines`, `42 files` (for the chip)."""
        if self.kind == "codebase":
            return _plural(len(self.files), "file")
        if self.page_count is not None:
            return _plural(self.page_count, "page")
        unit = {"csv": "row", "tsv": "row", "docx": "paragraph"}.get(self.kind, "line")
        return _plural(self.line_count or 0, unit)

    @property
    def header(self) -> str:
        return f"=== {self.name} ({KIND_NAMES.get(self.kind, self.kind)}, {self.size_label}) ==="

    @property
    def footer(self) -> str:
        return f"=== end of {self.name} ==="

    def prompt_text(self) -> str:
        """The whole document as prompt text (page images are named where they go)."""
        return render(self, self.chunks, self.images)

    def content_blocks(self) -> list[dict[str, Any]]:
        """Chat content blocks: text with markers, and each page image after its marker."""
        return render_blocks(self, self.chunks, self.images)

    def token_count(self, count: TokenCounter) -> int:
        """Tokens this document takes in the prompt: its text plus its page images.

        Remembered per counter, so the chip, the plan and retrieval count a long document once.
        """
        if count not in self._counts:
            text = count(self.prompt_text())
            self._counts[count] = text + sum(image_tokens(i) for i in self.images)
        return self._counts[count]


def image_tokens(image: PageImage) -> int:
    """An image's prompt tokens: its soft tokens plus the begin/end markers."""
    return image.tokens + 2


def _plural(n: int, unit: str) -> str:
    return f"{n:,} {unit}" + ("" if n == 1 else "s")


def _marker(label: str) -> str:
    return f"--- {label} ---"


def _ordered(chunks: Sequence[Chunk], images: Sequence[PageImage]) -> list[Chunk | PageImage]:
    """Chunks and page images in page order (images go before the first chunk of a later page)."""
    items: list[Chunk | PageImage] = []
    pending = sorted(images, key=lambda i: i.page)
    for chunk in chunks:
        while pending and chunk.page is not None and pending[0].page < chunk.page:
            items.append(pending.pop(0))
        items.append(chunk)
    return items + pending


def render(
    document: Document,
    chunks: Sequence[Chunk],
    images: Sequence[PageImage] = (),
    note: str | None = None,
) -> str:
    """Prompt text for `chunks` of `document`, each under its marker (repeated labels merge)."""
    return "".join(
        b["text"] if b["type"] == "text" else ""
        for b in render_blocks(document, chunks, images, note)
    )


def render_blocks(
    document: Document,
    chunks: Sequence[Chunk],
    images: Sequence[PageImage] = (),
    note: str | None = None,
) -> list[dict[str, Any]]:
    """`render` as content blocks, with an image block after each page image's marker."""
    blocks: list[dict[str, Any]] = []
    parts = [document.header + "\n"]
    if note:
        parts.append(note + "\n")
    previous = None
    for item in _ordered(chunks, images):
        if isinstance(item, PageImage):
            parts.append(_marker(item.label) + "\n")
            blocks.append({"type": "text", "text": "".join(parts)})
            blocks.append(item.block())
            parts, previous = ["\n"], None
            continue
        if item.label != previous:
            parts.append(_marker(item.label) + "\n")
            previous = item.label
        parts.append(item.text.rstrip("\n") + "\n")
    parts.append(document.footer + "\n")
    blocks.append({"type": "text", "text": "".join(parts)})
    return blocks


def chunk_lines(
    lines: Sequence[str],
    label: Callable[[int, int], str],
    *,
    first_line: int = 1,
    page: int | None = None,
    path: str | None = None,
    target_chars: int = CHUNK_CHARS,
    header: str | None = None,
) -> list[Chunk]:
    """Cut `lines` into chunks of about `target_chars`, at paragraph breaks where possible.

    `label(first, last)` names a chunk from its 1-based line numbers (offset by `first_line`);
    `header` (e.g. a table's column names) heads every chunk.
    """
    chunks: list[Chunk] = []
    start, size = 0, 0
    for i, line in enumerate(lines):
        size += len(line) + 1
        paragraph_end = not line.strip() or i + 1 == len(lines) or not lines[i + 1].strip()
        if (
            (size >= target_chars and paragraph_end)
            or size >= 2 * target_chars
            or i + 1 == len(lines)
        ):
            body = "\n".join(lines[start : i + 1])
            if body.strip():
                a, b = first_line + start, first_line + i
                text = body if header is None else f"{header}\n{body}"
                chunks.append(Chunk(text, label(a, b), page=page, lines=(a, b), path=path))
            start, size = i + 1, 0
    return chunks


def line_range(a: int, b: int, unit: str = "lines") -> str:
    """`lines 40–79` (or `line 40`)."""
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{singular} {a}" if a == b else f"{unit} {a}–{b}"
