"""Generated documents for the document tests: PDFs (fpdf2, with text layers, scanned pages,
passwords), an empty PDF, DOCX (python-docx), and a stand-in token counter."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

FILLER_WORDS = [
    "river",
    "stone",
    "market",
    "lantern",
    "harbor",
    "meadow",
    "copper",
    "window",
    "garden",
    "silver",
    "morning",
    "ladder",
    "forest",
    "engine",
    "pocket",
    "candle",
    "winter",
    "summer",
    "bridge",
    "mirror",
    "valley",
    "orchard",
    "canvas",
    "thunder",
    "pillow",
    "basket",
    "marble",
    "cotton",
    "saddle",
    "violet",
    "anchor",
    "compass",
    "feather",
    "glacier",
    "quarry",
]


def filler(rng: random.Random, sentences: int = 12) -> str:
    """Sentences of common words (no planted terms), one per line."""
    lines = []
    for _ in range(sentences):
        words = rng.choices(FILLER_WORDS, k=rng.randint(8, 14))
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines)


def scanned_page(text: str, size: tuple[int, int] = (850, 1100)) -> Image.Image:
    """A page as a picture: dark text drawn on white, no text layer."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(text.split("\n")):
        draw.text((60, 80 + 30 * i), line, fill=(20, 20, 20))
    return image


def write_pdf(
    path: Path,
    pages: Sequence[str | Image.Image],
    *,
    user_password: str | None = None,
) -> Path:
    """A PDF with one page per item: text (a text layer) or an image (a scanned page)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=10)
    for page in pages:
        pdf.add_page()
        if isinstance(page, Image.Image):
            pdf.image(page, x=0, y=0, w=pdf.w, h=pdf.h)
        else:
            for i, line in enumerate(page.split("\n")):
                pdf.text(15, 20 + 5 * i, line)
    if user_password is not None:
        pdf.set_encryption(owner_password="owner-" + user_password, user_password=user_password)
    pdf.output(str(path))
    return path


def write_empty_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree has no pages (pdfium writes it)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.save(str(path))
    pdf.close()
    return path


def write_docx(path: Path, paragraphs: Sequence[str], table: Sequence[Sequence[str]] = ()) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly notes", level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


class WordCounter:
    """A stand-in token counter for tests that need no tokenizer: one token per word or mark."""

    def __call__(self, text: str) -> int:
        import re

        return len(re.findall(r"\w+|[^\w\s]", text))
