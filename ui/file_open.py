"""Files opened from Finder or the Dock ("Open With", a drop on the Dock icon) attach to the
current chat: macOS delivers them to the application as Qt `QFileOpenEvent`s."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication


class FileOpenHandler(QObject):
    """An application-wide event filter that hands each opened file to the window's composer.

    Files opened while there is no window (the app launched by opening a file) wait and are
    attached once `set_window` gives one.
    """

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.window = None
        self.pending: list[Path] = []
        app.installEventFilter(self)

    def set_window(self, window) -> None:
        """The window whose composer takes opened files (None: keep them until there is one)."""
        self.window = window
        if window is None:
            return
        window.destroyed.connect(lambda: self.set_window(None))
        pending, self.pending = self.pending, []
        if pending:
            self.attach(pending)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() != QEvent.Type.FileOpen:
            return False
        path = event.file() or event.url().toLocalFile()
        if path:
            if self.window is None:
                self.pending.append(Path(path))
            else:
                self.attach([Path(path)])
        return True

    def attach(self, paths: list[Path]) -> None:
        """Attach to the composer (which checks each file) and bring the window forward."""
        self.window.composer.add_paths(paths)
        if self.window.isMinimized():
            self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()


def install(app: QApplication, window=None) -> FileOpenHandler:
    """The app's one handler (made on first call), pointed at `window` when given."""
    handler = app.findChild(FileOpenHandler)
    if handler is None:
        handler = FileOpenHandler(app)
    if window is not None:
        handler.set_window(window)
    return handler
