"""PDF through pypdfium2: the text layer page by page; pages without one rendered as images.

A page whose text layer is empty (a scan, a photo of a page) is rendered at the size the
image budget uses, so the processor never has to upscale it; the model reads it as an image.
Password-protected, damaged and page-less files raise the typed errors of `errors.py`.
"""

from __future__ import annotations

import math
import mmap
import os
import re
from pathlib import Path

from mlx_model.processing.image import aspect_ratio_preserving_size, validate_budget

from .errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from .model import Chunk, Document, PageImage, chunk_lines

# A page with fewer visible characters than this has no usable text layer.
MIN_PAGE_CHARS = 8


def read_pdf(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    image_budget: int = 280,
    patch_size: int = 16,
    pooling_kernel_size: int = 3,
    max_pages: int = 5000,
) -> Document:
    """Read a PDF: one chunk per page (long pages split at paragraphs), images for scanned pages.

    `image_budget` is the soft-token budget scanned pages are rendered for; `patch_size` and
    `pooling_kernel_size` come from the checkpoint's image processor config.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    path = Path(path)
    name = name or path.name
    validate_budget(image_budget)
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        # pdfium's error code can be left over from an earlier call: confirm it from the file.
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD and _contains(path, rb"/Encrypt"):
            raise EncryptedDocumentError(
                f"“{name}” is protected by a password. Open it in a PDF viewer, save a copy "
                "without the password and attach that.",
                source=str(path),
            ) from exc
        if _contains(path, rb"/Count\s*0\b") and not _contains(path, rb"/Count\s*[1-9]"):
            raise EmptyDocumentError(f"“{name}” has no pages.", source=str(path)) from exc
        raise CorruptDocumentError(
            f"“{name}” is damaged or not a PDF we can read.", source=str(path)
        ) from exc
    try:
        count = len(pdf)
        if count == 0:
            raise EmptyDocumentError(f"“{name}” has no pages.", source=str(path))
        if count > max_pages:
            raise DocumentTooLargeError(
                f"“{name}” has {count:,} pages; the limit is {max_pages:,}.",
                source=str(path),
                limit=f"{max_pages} pages",
            )
        chunks: list[Chunk] = []
        images: list[PageImage] = []
        for index in range(count):
            page = pdf[index]
            try:
                number = index + 1
                text = _page_text(page)
                if len("".join(text.split())) >= MIN_PAGE_CHARS:
                    chunks += chunk_lines(
                        text.split("\n"), lambda a, b, n=number: f"page {n}", page=number
                    )
                else:
                    images.append(
                        _render(page, number, image_budget, patch_size, pooling_kernel_size)
                    )
            finally:
                page.close()
    finally:
        pdf.close()
    return Document(
        name=name,
        kind="pdf",
        chunks=chunks,
        page_count=count,
        images=images,
        source=str(path),
    )


def _contains(path: Path, pattern: bytes) -> bool:
    """Whether the file's bytes match `pattern` (a regular expression), without reading it all in."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return re.search(pattern, data) is not None


def _page_text(page) -> str:
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_bounded()
    finally:
        textpage.close()
    # pdfium ends lines with \r\n and marks hyphenation breaks with U+FFFE/U+0002.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "").replace("\x02", "")
    return text.strip("\n")


def _render(page, number: int, budget: int, patch_size: int, pooling: int) -> PageImage:
    """Render a page with about as many pixels as the budget's grid (never less on a side)."""
    width_pt, height_pt = page.get_size()
    target_px = budget * pooling**2 * patch_size**2
    scale = math.sqrt(target_px / max(1.0, width_pt * height_pt))
    image = page.render(scale=scale).to_pil().convert("RGB")
    height, width = aspect_ratio_preserving_size(
        image.height, image.width, patch_size, budget * pooling**2, pooling
    )
    tokens = (height // (patch_size * pooling)) * (width // (patch_size * pooling))
    return PageImage(page=number, image=image, max_soft_tokens=budget, tokens=tokens)
