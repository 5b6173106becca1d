"""Markdown to Qt rich-text HTML: prose via markdown-it, code via Pygments, math via Unicode.

A message is first split into blocks (`split_blocks`): fenced code blocks and prose
paragraphs. While an answer streams, only the last block changes, so the view re-renders
just that one. Prose becomes HTML that Qt's rich-text engine understands (tables
included); math spans are swapped for placeholders before Markdown runs (so `_` and `\\`
inside formulas survive) and put back as Unicode, or as the raw source if malformed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

from ui.math_text import find_math, latex_to_unicode

MAX_PROSE_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)")
MATH_FONT = "'STIX Two Math', 'Cambria Math', 'Latin Modern Math', serif"
MONO_FONT = "'SF Mono', Menlo, 'DejaVu Sans Mono', monospace"


@dataclass(frozen=True)
class Block:
    kind: str  # "prose" | "code"
    source: str  # prose Markdown, or the code itself (without fences)
    language: str = ""
    closed: bool = True  # False for a code block whose closing fence has not arrived yet


def split_blocks(text: str) -> list[Block]:
    """Split Markdown into fenced code blocks and prose chunks separated by blank lines."""
    blocks: list[Block] = []
    prose: list[str] = []

    def flush_prose() -> None:
        chunk: list[str] = []
        for line in prose + [""]:
            if line.strip() == "" and chunk and not _continues(prose, chunk):
                blocks.append(Block("prose", "\n".join(chunk).strip("\n")))
                chunk = []
            elif line.strip() or chunk:
                chunk.append(line)
        if chunk:  # an unfinished display formula at the very end
            blocks.append(Block("prose", "\n".join(chunk).strip("\n")))
        prose.clear()

    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        flush_prose()
        fence, language = match.group(1), match.group(2)
        code: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                closed = True
                i += 1
                break
            code.append(lines[i])
            i += 1
        blocks.append(Block("code", "\n".join(code), language, closed))
    flush_prose()
    result: list[Block] = []
    for block in blocks:
        if block.kind == "code":
            result.append(block)
        elif block.source.strip():
            result.extend(Block("prose", piece) for piece in _split_long(block.source))
    return result


def _split_long(source: str, limit: int = MAX_PROSE_CHARS) -> list[str]:
    """Cut a very long paragraph at sentence ends so each piece re-renders quickly.

    Rich-text layout grows faster than linearly with length; a run-on paragraph that
    streams for minutes would otherwise be laid out again, whole, 30 times a second.
    Tables, lists and quotes are never cut, nor is text inside math or inline code.
    """
    if (
        len(source) <= limit
        or source.lstrip()[:1] in ("|", "-", "*", ">", "+")
        or source.lstrip()[:1].isdigit()
    ):
        return [source]
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(source):
        end = match.end()
        if end - start < limit:
            continue
        head = source[start:end]
        if head.count("$") % 2 or head.count("`") % 2:
            continue
        pieces.append(head.strip())
        start = end
    pieces.append(source[start:].strip())
    return [piece for piece in pieces if piece]


def _continues(prose: list[str], chunk: list[str]) -> bool:
    """Keep an open `$$` display formula in one chunk across blank lines."""
    return "\n".join(chunk).count("$$") % 2 == 1


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def _placeholder(index: int) -> str:
    return f"\ue000{index}\ue001"


def prose_html(source: str, colors: dict[str, str] | None = None, *, typeset: bool = True) -> str:
    """Rich-text HTML for a prose chunk, with math rendered and tables styled for Qt
    (`typeset` False: formulas as Unicode text, cheap, for a paragraph still streaming)."""
    colors = colors or {}
    spans = find_math(source)
    rendered: list[tuple[str, bool]] = []
    pieces: list[str] = []
    cursor = 0
    for index, span in enumerate(spans):
        pieces.append(source[cursor : span.start])
        pieces.append(_placeholder(index))
        cursor = span.end
        rendered.append(
            (
                math_html(
                    source[span.start : span.end], span.source, span.display, typeset=typeset
                ),
                span.display,
            )  # fmt: skip
        )
    pieces.append(source[cursor:])
    body = _markdown().render("".join(pieces))
    for index, (math, display) in enumerate(rendered):
        # A display formula alone in its paragraph is centred on a line of its own.
        if display:
            body = body.replace(f"<p>{_placeholder(index)}</p>", f'<p align="center">{math}</p>')
        body = body.replace(_placeholder(index), math)
    border = colors.get("border", "#c8c8cc")
    code_bg = colors.get("code_bg", "#f2f2f5")
    body = body.replace(
        "<table>",
        f'<table border="1" cellspacing="0" cellpadding="5" style="border-color:{border};'
        f' border-collapse: collapse; margin: 4px 0;">',
    )
    body = body.replace(
        "<code>", f'<code style="font-family:{MONO_FONT}; background-color:{code_bg};">'
    )
    body = re.sub(r"<h([1-6])>", lambda m: f'<h{m.group(1)} style="margin: 6px 0 2px 0;">', body)
    return body.strip()


def math_html(raw: str, formula: str, display: bool, color: str = "", *,
              typeset: bool = True) -> str:  # fmt: skip
    """A formula typeset as an image (`ui.math_image`), else as Unicode in a math font;
    malformed formulas stay as their raw source."""
    from ui import theme
    from ui.math_image import typeset as typeset_image

    image = None
    if typeset:
        image = typeset_image(formula, color or theme.current().colors["text"], display)
    if image is not None:
        data, width, height = image
        return (
            f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}"'
            f' alt="{html.escape(raw, quote=True)}" style="vertical-align: middle;">'
        )
    text = latex_to_unicode(formula)
    if text is None:
        return f'<span style="font-family:{MONO_FONT};">{html.escape(raw)}</span>'
    style = f"font-family:{MATH_FONT}; font-size: {'large' if display else 'medium'};"
    return f'<span style="{style}">{html.escape(text)}</span>'


def code_html(code: str, language: str = "", dark: bool = False) -> str:
    """Syntax-highlighted code as a `<pre>` Qt renders (inline styles, wrapped lines)."""
    lexer = _lexer(language, code)
    formatter = HtmlFormatter(nowrap=True, noclasses=True, style="monokai" if dark else "default")
    inner = highlight(code, lexer, formatter) if code else ""
    return (
        f'<pre style="font-family:{MONO_FONT}; white-space: pre-wrap; margin: 0;">'
        f"{inner.rstrip()}</pre>"
    )


CODE_CHUNK_LINES = 16  # a code block is shown as labels of this many lines each


def code_html_chunks(code: str, language: str = "", dark: bool = False, *,
                     highlighted: bool = True) -> list[str]:  # fmt: skip
    """The code block as `<pre>` pieces of `CODE_CHUNK_LINES` lines each.

    Like long prose, a long code block streams: as separate labels, only the last piece
    is laid out again when a line arrives, instead of the whole block 30 times a second.
    Pygments closes its spans at each line end, so highlighted lines split cleanly.
    """
    if highlighted and code:
        formatter = HtmlFormatter(
            nowrap=True, noclasses=True, style="monokai" if dark else "default"
        )
        lines = highlight(code, _lexer(language, code), formatter).rstrip("\n").split("\n")
    else:
        lines = html.escape(code).split("\n")
    return [
        f'<pre style="font-family:{MONO_FONT}; white-space: pre-wrap; margin: 0;">'
        + "\n".join(lines[start : start + CODE_CHUNK_LINES])
        + "</pre>"
        for start in range(0, max(len(lines), 1), CODE_CHUNK_LINES)
    ]


def plain_code_html(code: str) -> str:
    """Code without highlighting (cheap), for a block whose closing fence has not arrived."""
    return (
        f'<pre style="font-family:{MONO_FONT}; white-space: pre-wrap; margin: 0;">'
        f"{html.escape(code)}</pre>"
    )


def _lexer(language: str, code: str):
    if language:
        try:
            return get_lexer_by_name(language)
        except ClassNotFound:
            return TextLexer()
    if len(code) > 40:
        try:
            return guess_lexer(code)
        except ClassNotFound:
            pass
    return TextLexer()


def warm_up() -> None:
    """Import Pygments' lexers, formatter and styles now, not during the first streamed answer."""
    for dark in (False, True):
        code_html("x = 1", "python", dark)
    prose_html("*warm* $x^2$ | a |")


def plain_text(markdown_source: str) -> str:
    """A screen-reader friendly plain version of a message (Markdown markup removed)."""
    text = re.sub(r"^ {0,3}(`{3,}|~{3,}).*$", "", markdown_source, flags=re.M)
    text = re.sub(r"[*_]{1,3}([^*_]+)[*_]{1,3}", r"\1", text)
    text = re.sub(r"^#{1,6}\s*", "", text, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
