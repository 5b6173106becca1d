"""Light and dark appearance following the system: palette, style sheet and tinted icons."""

from __future__ import annotations

import os
import string
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

LIGHT = {
    "window": "#ffffff",
    "sidebar": "#f4f4f6",
    "border": "#dcdce0",
    "text": "#1d1d1f",
    "muted": "#6e6e73",
    "hover": "#e8e8ed",
    "selection": "#d5e3ff",
    "selection_text": "#1d1d1f",
    "field": "#ffffff",
    "card": "#f6f6f8",
    "code_bg": "#f6f8fa",
    "user_bubble": "#e9effd",
    "accent": "#2f64e8",
    "error_bg": "#fdecec",
    "error_border": "#f2b8b5",
    "error_text": "#8c1d18",
    "pygments_style": "default",
}
DARK = {
    "window": "#1e1e20",
    "sidebar": "#252528",
    "border": "#3a3a3e",
    "text": "#ececf1",
    "muted": "#a1a1a8",
    "hover": "#2f2f33",
    "selection": "#2d4a8a",
    "selection_text": "#ffffff",
    "field": "#2a2a2d",
    "card": "#2a2a2d",
    "code_bg": "#161618",
    "user_bubble": "#2b3550",
    "accent": "#5b8cff",
    "error_bg": "#3a1f1f",
    "error_border": "#7a3632",
    "error_text": "#ffb4ab",
    "pygments_style": "monokai",
}


def assets_dir() -> Path:
    """Where icons and style sheets live: env override, a frozen bundle, the source tree
    (also an editable install), or the data files of an installed wheel."""
    override = os.environ.get("GEMMA_DESK_ASSETS")
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "assets"
    source_tree = Path(__file__).resolve().parent.parent / "assets"
    if source_tree.is_dir():
        return source_tree
    return Path(sys.prefix) / "share" / "gemma-desk" / "assets"


@dataclass(frozen=True)
class Theme:
    """The colours in force; `dark` tells which system appearance they follow."""

    dark: bool
    colors: dict[str, str]

    def color(self, name: str) -> QColor:
        return QColor(self.colors[name])


_current = Theme(False, LIGHT)


def current() -> Theme:
    return _current


def system_prefers_dark() -> bool:
    """The system appearance (Qt 6.5+ color scheme), overridable with GEMMA_DESK_APPEARANCE."""
    forced = os.environ.get("GEMMA_DESK_APPEARANCE", "").lower()
    if forced in ("dark", "light"):
        return forced == "dark"
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def apply(app: QApplication, dark: bool | None = None) -> Theme:
    """Apply the palette and style sheet for the system appearance (or `dark` when given)."""
    global _current
    dark = system_prefers_dark() if dark is None else dark
    colors = DARK if dark else LIGHT
    _current = Theme(dark, colors)
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Window, QColor(colors["window"]))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(colors["text"]))
    palette.setColor(QPalette.ColorRole.Base, QColor(colors["field"]))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor(colors["card"]))
    palette.setColor(QPalette.ColorRole.Text, QColor(colors["text"]))
    palette.setColor(QPalette.ColorRole.Button, QColor(colors["card"]))
    palette.setColor(QPalette.ColorRole.ButtonText, QColor(colors["text"]))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(colors["accent"]))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor(colors["muted"]))
    palette.setColor(QPalette.ColorRole.ToolTipBase, QColor(colors["card"]))
    palette.setColor(QPalette.ColorRole.ToolTipText, QColor(colors["text"]))
    palette.setColor(QPalette.ColorRole.Link, QColor(colors["accent"]))
    app.setPalette(palette)
    app.setStyleSheet(style_sheet(colors))
    icon.cache_clear()
    return _current


def style_sheet(colors: dict[str, str]) -> str:
    template = (assets_dir() / "styles" / "app.qss").read_text(encoding="utf-8")
    return string.Template(template).safe_substitute(colors)


@cache
def icon(name: str, color: str | None = None) -> QIcon:
    """A stroke icon from assets/icons tinted with the text colour (or `color`)."""
    path = assets_dir() / "icons" / f"{name}.svg"
    if not path.exists():
        return QIcon()
    svg = path.read_text(encoding="utf-8").replace("currentColor", color or _current.colors["text"])
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for size in (16, 20, 24, 32, 48):
        for scale in (1, 2):
            image = QImage(size * scale, size * scale, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            renderer.render(painter, QRectF(0, 0, size * scale, size * scale))
            painter.end()
            pixmap = QPixmap.fromImage(image)
            pixmap.setDevicePixelRatio(scale)
            result.addPixmap(pixmap)
    return result


def app_icon() -> QIcon:
    path = assets_dir() / "icons" / "app-icon.svg"
    return QIcon(str(path)) if path.exists() else QIcon()
