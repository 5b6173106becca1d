"""A widget showing Markdown as rich text, re-rendering only the blocks that changed."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ui import theme
from ui.markdown_render import Block, code_html_chunks, prose_html, split_blocks


class WrappedLabel(QLabel):
    """A word-wrapped label that remembers its height for each width.

    QLabel lays its rich text out again on every heightForWidth query, and the chat's
    layout asks every label on each pass; caching keeps a streaming update proportional
    to the block that changed instead of to the whole conversation.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self._heights: dict[int, int] = {}

    def setText(self, text: str) -> None:  # noqa: N802 - Qt override
        self._heights.clear()
        super().setText(text)

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = super().heightForWidth(width)
        return height

    def changeEvent(self, event) -> None:  # noqa: N802 - fonts or style changed: measure again
        self._heights.clear()
        super().changeEvent(event)


class ProseLabel(WrappedLabel):
    """One prose block: selectable rich text that wraps."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageText")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setOpenExternalLinks(False)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)

    def set_block(self, block: Block, typeset: bool = True) -> None:
        self.typeset = typeset
        self.setText(prose_html(block.source, theme.current().colors, typeset=typeset))
        self.setAccessibleName(block.source[:200])


class CodeBlock(QFrame):
    """A fenced code block: language label, copy button and highlighted code."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CodeBlock")
        self.code = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 8)
        layout.setSpacing(2)
        header = QHBoxLayout()
        self.language = QLabel()
        self.language.setObjectName("CodeHeader")
        header.addWidget(self.language)
        header.addStretch(1)
        self.copy_button = QToolButton()
        self.copy_button.setObjectName("IconButton")
        self.copy_button.setIcon(theme.icon("copy"))
        self.copy_button.setText("Copy")
        self.copy_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.copy_button)
        layout.addLayout(header)
        self._chunks_layout = QVBoxLayout()
        self._chunks_layout.setSpacing(0)
        layout.addLayout(self._chunks_layout)
        self.chunks: list[WrappedLabel] = []
        self._highlighted: list[str] = []  # the closed block's highlighted chunks, to swap in
        self._block: Block | None = None

    def set_block(self, block: Block) -> None:
        self.code = block.source
        self.language.setText(block.language or "code")
        # Plain monospace while streaming; highlighted once the closing fence arrives. The
        # highlighted pieces replace the plain ones one per event-loop turn: swapping them
        # all at once (each laid out again) stalled the stream for ~50 ms on slow machines.
        self._show(code_html_chunks(block.source, highlighted=False))
        self._highlighted = []
        self._block = block
        if block.closed:  # Pygments itself takes ~10 ms: on a later turn too
            QTimer.singleShot(0, self, self._highlight_next_chunk)
        name = f"Code block, {block.language or 'plain text'}"
        if self.accessibleName() != name:  # a change notifies assistive tech: only when new
            self.setAccessibleName(name)

    def _show(self, pieces: list[str]) -> None:
        for index, piece in enumerate(pieces):
            if index == len(self.chunks):
                self.chunks.append(self._new_chunk())
            if self.chunks[index].text() != piece and not self._is_highlighted(index, piece):
                self.chunks[index].setText(piece)
                self.chunks[index].setProperty("highlighted", False)
        for label in self.chunks[len(pieces) :]:
            self._chunks_layout.removeWidget(label)
            label.deleteLater()
        del self.chunks[len(pieces) :]

    def _is_highlighted(self, index: int, plain: str) -> bool:
        """The chunk already shows the highlighted form of this same plain text."""
        return self.chunks[index].property("plain") == plain and bool(
            self.chunks[index].property("highlighted")
        )

    def _highlight_next_chunk(self) -> None:
        block = self._block
        if block is None or not block.closed:
            return
        if not self._highlighted:
            self._highlighted = code_html_chunks(
                block.source, block.language, theme.current().dark, highlighted=True
            )
            QTimer.singleShot(0, self, self._highlight_next_chunk)
            return
        plain = code_html_chunks(self.code, highlighted=False)
        for index, piece in enumerate(self._highlighted):
            label = self.chunks[index] if index < len(self.chunks) else None
            if label is None or label.property("highlighted"):
                continue
            label.setText(piece)
            label.setProperty("plain", plain[index] if index < len(plain) else "")
            label.setProperty("highlighted", True)
            QTimer.singleShot(0, self, self._highlight_next_chunk)
            return

    def highlighted(self) -> bool:
        """Every chunk shows its syntax-highlighted form."""
        return bool(self._highlighted) and all(c.property("highlighted") for c in self.chunks)

    def _new_chunk(self) -> WrappedLabel:
        label = WrappedLabel()
        label.setObjectName("CodeText")
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setAccessibleName("Code")
        self._chunks_layout.addWidget(label)
        return label

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText("Copied")
        QTimer.singleShot(1500, self.copy_button, lambda: self.copy_button.setText("Copy"))


class MarkdownView(QWidget):
    """Markdown text as a column of prose labels and code blocks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._blocks: list[Block] = []
        self._widgets: list[QWidget] = []
        self.markdown = ""
        self.final = True

    def set_markdown(self, text: str, final: bool = True) -> None:
        """Show `text`; blocks identical to what is shown are left alone. While an answer
        streams (`final` False) its last paragraph shows formulas as text; they are
        typeset once the paragraph is complete (a later one began, or the answer ended)."""
        if text == self.markdown and final == self.final:
            return
        self.markdown, self.final = text, final
        blocks = split_blocks(text)
        for index, block in enumerate(blocks):
            typeset = final or index < len(blocks) - 1
            if (
                index < len(self._blocks)
                and self._blocks[index] == block
                and getattr(self._widgets[index], "typeset", True) == typeset
            ):
                continue
            wanted = CodeBlock if block.kind == "code" else ProseLabel
            if index < len(self._widgets) and type(self._widgets[index]) is wanted:
                widget = self._widgets[index]
            else:
                widget = wanted(self)
                if index < len(self._widgets):
                    old = self._widgets[index]
                    self._layout.replaceWidget(old, widget)
                    old.deleteLater()
                    self._widgets[index] = widget
                else:
                    self._layout.addWidget(widget)
                    self._widgets.append(widget)
            if isinstance(widget, ProseLabel):
                widget.set_block(block, typeset)
            else:
                widget.set_block(block)
        for widget in self._widgets[len(blocks) :]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[len(blocks) :]
        self._blocks = blocks

    def code_blocks(self) -> list[CodeBlock]:
        return [w for w in self._widgets if isinstance(w, CodeBlock)]

    def block_widgets(self) -> list[QWidget]:
        return list(self._widgets)


def warm_up_rendering() -> None:
    """Lay out a code block and a prose block once, off screen, so the first ones of an
    answer do not pay for Pygments' imports and Qt's font lookups (tens of ms) mid-stream."""
    from ui.markdown_render import warm_up
    from ui.math_image import warm_up_in_background

    warm_up_in_background()
    warm_up()
    host = QWidget()
    view = MarkdownView(host)
    view.set_markdown("*warm* $x^2$\n\n```python\nprint(1)\n```\n\n```\nplain\n")
    for widget in view.block_widgets():
        for label in [widget, *widget.findChildren(QLabel)]:
            label.heightForWidth(400)
    host.deleteLater()
