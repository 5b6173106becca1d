"""Markdown, code and math rendering: what the chat shows for a message's text."""

from __future__ import annotations

from ui.markdown_render import code_html, prose_html, split_blocks
from ui.math_text import find_math, latex_to_unicode


def test_fenced_code_becomes_its_own_block_with_its_language():
    blocks = split_blocks("Intro\n\n```python\nprint('hi')\n```\n\nAfter")
    assert [(b.kind, b.language) for b in blocks] == [
        ("prose", ""),
        ("code", "python"),
        ("prose", ""),
    ]
    assert blocks[1].source == "print('hi')"
    assert blocks[1].closed


def test_an_unclosed_fence_while_streaming_is_an_open_code_block():
    blocks = split_blocks("Look:\n```js\nlet x = 1;")
    assert blocks[-1].kind == "code" and not blocks[-1].closed
    assert blocks[-1].source == "let x = 1;"


def test_streaming_appends_change_only_the_last_block():
    before = split_blocks("Para one.\n\nPara two")
    after = split_blocks("Para one.\n\nPara two grows")
    assert before[0] == after[0] and before[1] != after[1]


def test_code_is_syntax_highlighted():
    html = code_html("def f():\n    return 1", "python")
    assert "<pre" in html and "color" in html and "return" in html


def test_tables_render_as_html_tables():
    html = prose_html("| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<table" in html and "<td>1</td>" in html


def test_formulas_are_typeset_as_images_sized_for_the_text(qapp):
    from PySide6.QtGui import QImage

    from ui.math_image import typeset

    html = prose_html(r"Energy $E = mc^2$ and $$\frac{a}{b} + \sqrt{x}$$")
    assert html.count('<img src="data:image/png;base64,') == 2 and "$" not in html.split("alt=")[0]
    data, width, height = typeset(r"\frac{a}{b} + \sqrt{x}", "#000000", True)
    image = QImage.fromData(__import__("base64").b64decode(data))
    assert (image.width(), image.height()) == (2 * width, 2 * height)  # sharp on Retina
    assert image.pixelColor(0, 0).alpha() == 0  # transparent: readable on a dark window too
    inline = typeset("E = mc^2", "#000000", False)
    assert 10 < inline[2] < height  # inline math about a line high, display math taller


def test_math_mathtext_cannot_lay_out_falls_back_to_unicode():
    html = prose_html(r"Then $$\frac{a}{b} \le \sqrt{x}$$ holds")  # mathtext has no \le
    assert "a⁄b ≤ √x" in html and "<img" not in html


def test_incomplete_math_stays_raw_text():
    assert "$$\\sum_{i=1" in prose_html(r"Sum $$\sum_{i=1")
    assert find_math(r"Sum $$\sum_{i=1") == []


def test_malformed_math_is_shown_as_its_source():
    assert latex_to_unicode(r"x^{2") is None
    assert "$x^{2 + \\frac{1}$" in prose_html(r"Bad $x^{2 + \frac{1}$ here")


def test_dollar_amounts_are_not_math():
    assert find_math("It costs $5 and $6 today") == []


def test_math_inside_inline_code_is_left_alone():
    assert find_math("Use `$x$` literally") == []


def test_underscores_in_math_do_not_become_emphasis():
    html = prose_html(r"Vars $a_i$ and $b_j$")
    assert "<em>" not in html and html.count("<img") == 2
    assert 'alt="$a_i$"' in html and 'alt="$b_j$"' in html


def test_a_closed_code_block_is_highlighted_soon_after_it_is_shown(qtbot):
    from ui.markdown_view import MarkdownView

    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("```python\n" + "def f():\n    return 1\n" * 20 + "```")
    [code] = view.code_blocks()
    assert "<span" not in code.chunks[0].text()  # plain in the turn the fence closed
    qtbot.waitUntil(code.highlighted, timeout=5_000)
    assert len(code.chunks) == 3  # 40 lines in pieces of 16
    assert all("<span" in chunk.text() for chunk in code.chunks)


def test_a_streaming_code_block_only_rewrites_its_last_piece(qtbot):
    from ui.markdown_view import MarkdownView

    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("```\n" + "x = 1\n" * 20)
    [code] = view.code_blocks()
    first = code.chunks[0]
    first_text = first.text()
    view.set_markdown("```\n" + "x = 1\n" * 21)
    assert code.chunks[0] is first and first.text() == first_text
    assert code.chunks[1].text().count("x = 1") == 5


def test_a_streaming_paragraph_shows_math_as_text_until_it_is_complete(qtbot):
    from ui.markdown_view import MarkdownView

    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_markdown("First $x^2$ done.\n\nStill $y^2$ coming", final=False)
    first, last = view.block_widgets()
    assert "<img" in first.text() and "<img" not in last.text() and "y²" in last.text()
    view.set_markdown("First $x^2$ done.\n\nStill $y^2$ coming", final=True)
    assert "<img" in view.block_widgets()[1].text()
