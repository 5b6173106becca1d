"""A widget showing Markdown as rich text, re-rendering only the blocks that changed."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ui import theme
from ui.markdown_render import Block, code_html, plain_code_html, prose_html, split_blocks


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

    def set_block(self, block: Block) -> None:
        self.setText(prose_html(block.source, theme.current().colors))
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
        self.text = WrappedLabel()
        self.text.setObjectName("CodeText")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.text)

    def set_block(self, block: Block) -> None:
        self.code = block.source
        self.language.setText(block.language or "code")
        if block.closed:
            self.text.setText(code_html(block.source, block.language, theme.current().dark))
        else:  # still streaming: plain monospace now, highlighted once the fence closes
            self.text.setText(plain_code_html(block.source))
        self.text.setAccessibleName(f"{block.language or 'Code'} block")
        self.setAccessibleName(f"Code block, {block.language or 'plain text'}")

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

    def set_markdown(self, text: str) -> None:
        """Show `text`; blocks identical to what is shown are left alone."""
        if text == self.markdown:
            return
        self.markdown = text
        blocks = split_blocks(text)
        for index, block in enumerate(blocks):
            if index < len(self._blocks) and self._blocks[index] == block:
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
