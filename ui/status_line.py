"""The status line: model and precision, load progress, tokens/s, context bar, memory in use."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from ui.attachment_views import format_bytes
from ui.backend import ModelStatus, RunStats


class StatusLine(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.model_label = QLabel("No model")
        self.model_label.setAccessibleName("Model")
        self.addWidget(self.model_label)
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 100)
        self.load_bar.setMaximumWidth(140)
        self.load_bar.setAccessibleName("Model loading progress")
        self.load_bar.setVisible(False)
        self.addWidget(self.load_bar)
        self.notice_label = QLabel()
        self.notice_label.setAccessibleName("Notice")
        self.addWidget(self.notice_label, 1)
        self._notice_timer = QTimer(self, singleShot=True)
        self._notice_timer.timeout.connect(self.clear_notice)
        self.speed_label = QLabel()
        self.speed_label.setAccessibleName("Speed of the last answer")
        self.addPermanentWidget(self.speed_label)
        self.context_bar = QProgressBar()
        self.context_bar.setFixedWidth(190)
        self.context_bar.setFormat("%v / %m tokens")
        self.context_bar.setTextVisible(True)
        self.context_bar.setAccessibleName("Context used")
        self.context_bar.setRange(0, 1)
        self.context_bar.setValue(0)
        self.context_bar.setVisible(False)
        self.addPermanentWidget(self.context_bar)
        self.memory_label = QLabel()
        self.memory_label.setAccessibleName("Memory in use")
        self.addPermanentWidget(self.memory_label)

    def set_model(self, status: ModelStatus) -> None:
        if status.state == "ready":
            text = f"{status.name} · {status.precision}" if status.precision else status.name
        elif status.state == "loading":
            text = f"Loading {status.name}…"
        elif status.state == "unloaded":
            text = f"{status.name} · unloaded (loads again with your next message)"
        elif status.state == "error":
            text = f"Model error: {status.message}"
        else:
            text = "No model loaded"
        self.model_label.setText(text)
        self.model_label.setToolTip(status.path or status.message)
        self.load_bar.setVisible(status.state == "loading")
        self.load_bar.setValue(int(status.progress * 100))
        if status.context_limit:
            self.context_bar.setMaximum(status.context_limit)
        self.context_bar.setVisible(status.state == "ready" and self.context_bar.maximum() > 1)

    def set_stats(self, stats: RunStats) -> None:
        if stats.tokens_per_s:
            self.speed_label.setText(f"{stats.tokens_per_s:.1f} tok/s")
        if stats.context_limit:
            self.set_context(stats.context_used, stats.context_limit)
        if stats.memory_bytes:
            self.memory_label.setText(f"{format_bytes(stats.memory_bytes)} in use")

    def set_context(self, used: int, limit: int = 0) -> None:
        """The open chat's token meter (`limit` 0: keep the model's)."""
        limit = limit or self.context_bar.maximum()
        if limit <= 1:
            return
        self.context_bar.setVisible(True)
        self.context_bar.setMaximum(limit)
        self.context_bar.setValue(min(used, limit))
        self.context_bar.setAccessibleDescription(f"{used} of {limit} tokens")

    def show_notice(self, text: str, timeout_ms: int = 10_000) -> None:
        """A sentence for a while (`timeout_ms`; 0: until the next one)."""
        self.notice_label.setText(text)
        self.notice_label.setToolTip(text)
        if timeout_ms:
            self._notice_timer.start(timeout_ms)
        else:
            self._notice_timer.stop()

    def clear_notice(self) -> None:
        self.notice_label.clear()
        self.notice_label.setToolTip("")
