"""How attachments look: image thumbnails, audio waveforms with duration, video frame strips, chips."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ui import theme
from ui.backend import AttachmentView
from ui.long_inputs import document_caption


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


def describe(attachment: AttachmentView) -> str:
    """A sentence naming the attachment, for accessible names and tooltips."""
    kinds = {"image": "Image", "audio": "Audio", "video": "Video", "document": "Document"}
    parts = [kinds.get(attachment.kind, "File"), attachment.name]
    if attachment.kind == "document":
        return ", ".join([*parts, document_caption(attachment)])
    if attachment.duration_s:
        parts.append(format_duration(attachment.duration_s))
    if attachment.width and attachment.height:
        parts.append(f"{attachment.width}×{attachment.height}")
    return ", ".join(parts)


def scaled_pixmap(image: QImage, size: QSize) -> QPixmap:
    return QPixmap.fromImage(image).scaled(
        size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


class WaveformView(QWidget):
    """Audio peaks drawn as bars; `progress` (0..1) tints what has been played."""

    def __init__(self, peaks: list[float], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peaks = list(peaks) or [0.05] * 48
        self.progress = 0.0
        self.setMinimumSize(160, 34)
        self.setAccessibleName("Audio waveform")

    def sizeHint(self) -> QSize:
        return QSize(220, 36)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colors = theme.current()
        played, rest = colors.color("accent"), QColor(colors.colors["muted"])
        count = len(self.peaks)
        width = self.width() / count
        mid = self.height() / 2
        for index, peak in enumerate(self.peaks):
            height = max(2.0, min(1.0, float(peak)) * (self.height() - 4))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(played if index / count < self.progress else rest)
            painter.drawRoundedRect(
                QRectF(
                    index * width + width * 0.2, mid - height / 2, max(1.5, width * 0.6), height
                ),
                1,
                1,
            )


STRIP_WIDTH = 320  # a video's frame strip, about as wide as an image's thumbnail


def frame_strip(frames: list[QImage], width: int) -> QPixmap:
    """Frames side by side (or an already joined strip) scaled to `width` pixels."""
    if len(frames) == 1:
        return QPixmap.fromImage(frames[0]).scaledToWidth(
            width, Qt.TransformationMode.SmoothTransformation
        )
    cell = width // len(frames)
    height = max(1, round(cell * frames[0].height() / max(1, frames[0].width())))
    pixmap = QPixmap(cell * len(frames), height)
    pixmap.fill(Qt.GlobalColor.black)
    painter = QPainter(pixmap)
    for index, frame in enumerate(frames):
        scaled = frame.scaled(cell, height, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)  # fmt: skip
        painter.drawImage(index * cell + (cell - scaled.width()) // 2, 0, scaled)
    painter.end()
    return pixmap


class AttachmentCard(QFrame):
    """An attachment inside a message: thumbnail, waveform + play + duration, or frame strip."""

    play_requested = Signal(object)  # AttachmentView

    def __init__(self, attachment: AttachmentView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attachment = attachment
        self.setObjectName("AttachmentCard")
        self.setAccessibleName(describe(attachment))
        self.setToolTip(describe(attachment))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        if attachment.kind == "image":
            thumb = QLabel()
            if attachment.thumbnail is not None and not attachment.thumbnail.isNull():
                thumb.setPixmap(scaled_pixmap(attachment.thumbnail, QSize(220, 160)))
            else:
                thumb.setText(attachment.name)
            thumb.setAccessibleName(describe(attachment))
            layout.addWidget(thumb)
        elif attachment.kind == "document":
            icon = QLabel()
            icon.setPixmap(theme.icon("document").pixmap(28, 28))
            layout.addWidget(icon)
            column = QVBoxLayout()
            column.setSpacing(1)
            column.addWidget(QLabel(attachment.name))
            self.caption = QLabel(document_caption(attachment))
            self.caption.setObjectName("Muted")
            column.addWidget(self.caption)
            layout.addLayout(column)
        elif attachment.kind == "audio":
            self.play_button = QToolButton()
            self.play_button.setObjectName("IconButton")
            self.play_button.setIcon(theme.icon("play"))
            self.play_button.setAccessibleName(f"Play {attachment.name}")
            self.play_button.clicked.connect(lambda: self.play_requested.emit(self.attachment))
            layout.addWidget(self.play_button)
            self.waveform = WaveformView(attachment.waveform)
            layout.addWidget(self.waveform, 1)
            duration = QLabel(format_duration(attachment.duration_s))
            duration.setObjectName("Muted")
            duration.setAccessibleName(f"Duration {format_duration(attachment.duration_s)}")
            layout.addWidget(duration)
        else:
            column = QVBoxLayout()
            column.setSpacing(3)
            frames = attachment.frames or ([attachment.thumbnail] if attachment.thumbnail else [])
            strip = QLabel(attachment.name)
            strip.setObjectName("FrameStrip")
            strip.setAccessibleName(f"Frames of {attachment.name}")
            if frames:  # one picture as wide as an image card, whatever the source gave
                strip.setPixmap(frame_strip(frames[:8], STRIP_WIDTH))
            column.addWidget(strip)
            caption = QLabel(f"{attachment.name}  ·  {format_duration(attachment.duration_s)}")
            caption.setObjectName("Muted")
            column.addWidget(caption)
            layout.addLayout(column)


class AttachmentChip(QFrame):
    """A pending attachment in the composer, removable before sending."""

    remove_requested = Signal(object)  # the chip

    def __init__(self, attachment: AttachmentView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attachment = attachment
        self.setObjectName("Chip")
        self.setAccessibleName(f"Attachment: {describe(attachment)}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 3, 3)
        layout.setSpacing(5)
        icon_label = QLabel()
        image = attachment.thumbnail or (attachment.frames[0] if attachment.frames else None)
        if image is not None and not image.isNull():
            icon_label.setPixmap(scaled_pixmap(image, QSize(28, 28)))
        else:
            icon_label.setPixmap(theme.icon(attachment.kind).pixmap(18, 18))
        layout.addWidget(icon_label)
        text = attachment.name if len(attachment.name) <= 28 else attachment.name[:25] + "…"
        if attachment.duration_s:
            text += f"  {format_duration(attachment.duration_s)}"
        if attachment.kind == "document":
            text += f"  {document_caption(attachment)}"
        label = QLabel(text)
        self.label = label
        label.setToolTip(describe(attachment))
        layout.addWidget(label)
        self.remove_button = QToolButton()
        self.remove_button.setObjectName("IconButton")
        self.remove_button.setIcon(theme.icon("close"))
        self.remove_button.setIconSize(QSize(12, 12))
        self.remove_button.setAccessibleName(f"Remove {attachment.name}")
        self.remove_button.setToolTip("Remove")
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self))
        layout.addWidget(self.remove_button)
