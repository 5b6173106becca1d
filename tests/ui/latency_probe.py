"""Measures the UI thread's event-loop latency while a long answer streams, in its own process.

Run by `test_main_window.py` as `python -m tests.ui.latency_probe`; prints one JSON line.
The app runs in a process of its own; the test suite's process carries every earlier test's
models, servers and threads, which would measure the suite rather than the app.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    os.environ["GEMMA_DESK_CONFIG_DIR"] = tempfile.mkdtemp()
    from tests.ui.test_main_window import answers, long_replier
    from ui import theme
    from ui.main_window import MainWindow
    from ui.memory_backend import MemoryBackend

    theme.apply(app)
    backend = MemoryBackend(long_replier, chunk_interval_ms=1)
    window = MainWindow(backend)
    window.show()
    QTest.qWaitForWindowExposed(window)
    QTest.qWait(200)  # the window's start-up work (warm-ups) runs before the user types
    gc.collect()
    gc.freeze()  # as ui.launch does once the window is up
    delays: list[float] = []
    shown_chars: list[int] = []  # how much of the answer had arrived at each tick
    expected = [0.0]

    def tick() -> None:
        now = time.monotonic()
        if backend.is_generating(window.conversation_id):
            delays.append(now - expected[0])
            shown_chars.append(len(answers(window)[0].message.text))
            expected[0] = now + 0.010
            QTimer.singleShot(10, tick)

    window.composer.input.setPlainText("long")
    QTest.keyClick(window.composer.input, Qt.Key.Key_Return)
    while not (answers(window) and answers(window)[0].message.text):
        QTest.qWait(1)
    expected[0] = time.monotonic()
    tick()
    deadline = time.monotonic() + 120
    while backend.is_generating(window.conversation_id) and time.monotonic() < deadline:
        QTest.qWait(5)
    answer = answers(window)[0].message.text
    print(json.dumps({"delays": delays, "shown_chars": shown_chars, "answer_chars": len(answer)}))
    backend.shutdown()
    window.close()


if __name__ == "__main__":
    main()
