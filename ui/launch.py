"""`gemma-desk` (no subcommand): open the desktop app; `--smoke-test` opens, renders and quits."""

from __future__ import annotations

import argparse
import gc
import os
import sys

SMOKE_ENV = "GEMMA_DESK_SMOKE_TEST"
SMOKE_MS = 1500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="checkpoint folder to load (default: the one chosen in Settings)")  # fmt: skip
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="folder for the conversations database and media")  # fmt: skip
    parser.add_argument("--smoke-test", action="store_true",
                        help=f"open the window, render it and quit after a moment (also ${SMOKE_ENV}=1)")  # fmt: skip
    parser.add_argument("--demo", action="store_true",
                        help="run on an in-memory demo backend (no model, nothing saved)")  # fmt: skip


def make_backend(args: argparse.Namespace):
    """The real app backend, or the in-memory demo one with `--demo`."""
    if getattr(args, "demo", False):
        from ui.memory_backend import MemoryBackend

        return MemoryBackend()
    from ui.app_backend import AppBackend

    backend = AppBackend(model_path=args.model, data_dir=args.data_dir)
    backend.session.watch_memory_pressure()  # on a Mac: drop caches, then unload, when low
    return backend


def run(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui import file_open, theme
    from ui.main_window import MainWindow

    smoke = bool(getattr(args, "smoke_test", False) or os.environ.get(SMOKE_ENV) == "1")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Gemma Desk")
    app.setOrganizationName("Gemma Desk")
    app.setWindowIcon(theme.app_icon())
    theme.apply(app)
    app.styleHints().colorSchemeChanged.connect(lambda _: theme.apply(app))
    backend = make_backend(args)
    session = getattr(backend, "session", None)
    if session is not None:  # the log lives in the data folder (Help ▸ Save Diagnostics)
        from app.diagnostics import setup_logging

        setup_logging(session.storage.paths.root)
    window = MainWindow(backend)
    file_open.install(app, window)  # Finder's "Open With" and the Dock attach to the chat
    window.show()
    gc.collect()
    gc.freeze()  # start-up objects (Qt, MLX, transformers) never need scanning again
    if smoke:

        def finish() -> None:
            from ui.math_image import typeset

            window.grab()  # render every widget once
            # a frozen build without matplotlib's fonts would show formulas as plain text
            formula = "typeset" if typeset(r"\frac{a}{b}", "#000000", True) else "text-only"
            print(f"smoke test: window {window.width()}x{window.height()} rendered, "
                  f"page={'first-run' if window.pages.currentWidget() is window.first_run else 'chat'}, "
                  f"formula={formula}")  # fmt: skip
            window.close()

        QTimer.singleShot(SMOKE_MS, finish)
    code = app.exec()
    backend.shutdown()
    return int(code)
