"""The About box and "Check for Updates…": the version, and the release feed read only on request."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.version import version
from ui import about_box

DOWNLOAD = "https://example.org/gemma-desk/download"


def with_feed(backend, url: str):
    """The demo backend has no update setting: answer it as the real settings would."""
    plain = backend.setting
    backend.setting = lambda key, default=None: (
        url if key == "update_feed_url" else plain(key, default)
    )
    return backend


def button(box: QMessageBox, text: str):
    return next(b for b in box.buttons() if b.text() == text)


def test_the_about_box_shows_the_version(memory_backend, window_for):
    box = window_for(memory_backend).about()
    assert f"Gemma Desk {version()}" in box.text()


def test_opening_the_window_and_the_about_box_reads_no_feed(
    memory_backend, window_for, feed_server
):
    window = window_for(with_feed(memory_backend, feed_server.url))
    window.about()
    assert feed_server.requests == []


def test_check_for_updates_is_in_the_app_menu(memory_backend, window_for):
    window = window_for(memory_backend)
    assert window.update_action.text() == "Check for Updates…"
    assert window.update_action in window.menuBar().actions()[0].menu().actions()


def test_with_no_feed_set_the_check_says_how_to_turn_it_on(memory_backend, window_for):
    box = about_box.check_for_updates(window_for(memory_backend))
    assert box.text() == "Update checks are off."
    assert "Settings" in box.informativeText()


def test_a_newer_release_is_offered_and_its_page_opened_on_request(
    qtbot, memory_backend, window_for, feed_server, monkeypatch
):
    opened = []
    monkeypatch.setattr(about_box, "open_download_page", opened.append)
    feed_server.serve({"version": "999.0", "download_url": DOWNLOAD, "notes": "New voices."})
    window = window_for(with_feed(memory_backend, feed_server.url))
    about = window.about()
    button(about, "Check for Updates…").click()
    checker = window.findChild(about_box.UpdateChecker)
    qtbot.waitUntil(lambda: checker.box is not None, timeout=10_000)
    assert feed_server.requests == ["/feed.json"]
    assert checker.box.text() == "Gemma Desk 999.0 is available."
    assert "New voices." in checker.box.informativeText()
    assert opened == []
    button(checker.box, "Open Download Page").click()
    assert opened == [DOWNLOAD]


def test_the_same_release_says_up_to_date(qtbot, memory_backend, window_for, feed_server):
    feed_server.serve({"version": version(), "download_url": DOWNLOAD})
    checker = about_box.check_for_updates(window_for(with_feed(memory_backend, feed_server.url)))
    qtbot.waitUntil(lambda: checker.box is not None, timeout=10_000)
    assert checker.box.text() == f"Gemma Desk {version()} is up to date."
    assert [b.text() for b in checker.box.buttons()] == ["OK"]


def test_a_failed_check_says_why(qtbot, memory_backend, window_for, feed_server):
    feed_server.serve(raw=b"gone", status=404)
    checker = about_box.check_for_updates(window_for(with_feed(memory_backend, feed_server.url)))
    qtbot.waitUntil(lambda: checker.box is not None, timeout=10_000)
    assert checker.box.text() == "Could not check for updates."
    assert "404" in checker.box.informativeText()
