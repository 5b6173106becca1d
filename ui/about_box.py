"""About Gemma Desk and "Check for Updates…": the version, and the release feed read on request.

The feed's address is the `update_feed_url` setting (empty by default: no checks). A check
runs on a worker thread, one GET (app.updates), and only when the user asks; a newer release
is offered with a button that opens its download page in the browser. Nothing is installed.
"""

from __future__ import annotations

import contextlib
import threading

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from app import updates
from app.version import version
from ui import theme


def open_download_page(url: str) -> None:
    QDesktopServices.openUrl(QUrl(url))


def show_about(window: QWidget) -> QMessageBox:
    """The About box: name, version, and a button to check for updates."""
    box = QMessageBox(window)
    box.setWindowTitle("About Gemma Desk")
    box.setIconPixmap(theme.app_icon().pixmap(64, 64))
    box.setText(f"<b>Gemma Desk {version()}</b>")
    box.setInformativeText("Gemma 4 running entirely on this computer with MLX.")
    check = box.addButton("Check for Updates…", QMessageBox.ButtonRole.ActionRole)
    check.clicked.connect(lambda: check_for_updates(window))
    box.addButton(QMessageBox.StandardButton.Close)
    box.open()
    return box


class UpdateChecker(QObject):
    """Reads the feed on a worker thread and shows the outcome in a box (`box` once shown)."""

    finished = Signal(object)  # app.updates.UpdateCheck or UpdateCheckError

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.box: QMessageBox | None = None
        self.finished.connect(self.show_result)

    def start(self, feed_url: str) -> None:
        threading.Thread(
            target=self._run, args=(feed_url,), name="update-check", daemon=True
        ).start()

    def _run(self, feed_url: str) -> None:
        try:
            result: object = updates.check(feed_url, version())
        except updates.UpdateCheckError as exc:
            result = exc
        with contextlib.suppress(RuntimeError):  # the window closed while the feed was read
            self.finished.emit(result)

    def show_result(self, result: object) -> None:
        box = QMessageBox(self.window)
        box.setWindowTitle("Check for Updates")
        if isinstance(result, updates.UpdateCheckError):
            box.setIcon(QMessageBox.Icon.Warning)
            box.setText("Could not check for updates.")
            box.setInformativeText(str(result))
        elif result.available:
            box.setText(f"Gemma Desk {result.latest} is available.")
            details = f"You have {result.current}." + (
                f"\n\n{result.notes}" if result.notes else ""
            )
            box.setInformativeText(details)
            download = box.addButton("Open Download Page", QMessageBox.ButtonRole.AcceptRole)
            download.clicked.connect(lambda: open_download_page(result.download_url))
            box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        else:
            box.setText(f"Gemma Desk {result.current} is up to date.")
            box.setInformativeText(f"The newest release is {result.latest}.")
        box.open()
        self.box = box


def check_for_updates(window: QWidget) -> UpdateChecker | QMessageBox:
    """Check the feed set in Settings, or say how to set one when there is none."""
    feed_url = window.backend.setting("update_feed_url", "") or ""
    if not feed_url:
        box = QMessageBox(QMessageBox.Icon.Information, "Check for Updates",
                          "Update checks are off.", parent=window)  # fmt: skip
        box.setInformativeText(
            "To check for a newer Gemma Desk, set the address of a release feed in Settings "
            "(Update feed url). Nothing is checked until you ask."
        )
        box.open()
        return box
    checker = UpdateChecker(window)
    checker.start(feed_url)
    return checker
