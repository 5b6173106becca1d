"""Prefill progress on a terminal's stderr: one line redrawn in place, or a few plain lines.

`gemma-desk generate` and `gemma-desk chat` show how far a long prompt has been read
("Reading the prompt: 3,072 of 12,288 tokens (25%), about 14 s left"). On a terminal the
line is redrawn in place and erased when the answer starts; into a file or a pipe a line
is written each tenth of the prompt, so a log stays short.
"""

from __future__ import annotations

from typing import TextIO

from app.views import PrefillView

CLEAR_LINE = "\r\x1b[K"


class PrefillLine:
    """Writes prefill progress to `stream` (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._shown = False
        self._last_tenth = -1

    def update(self, done: int, total: int, eta_s: float | None) -> None:
        view = PrefillView(done, total, eta_s)
        if self.tty:
            self.stream.write(CLEAR_LINE + view.text())
        else:
            tenth = int(10 * view.fraction)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(view.text() + "\n")
        self._shown = True
        self.stream.flush()

    def finish(self) -> None:
        """The answer starts (or the turn ended): erase the line on a terminal."""
        if self._shown and self.tty:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
        self._shown = False
        self._last_tenth = -1
