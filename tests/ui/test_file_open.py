"""Opening a file from Finder or the Dock (QFileOpenEvent) attaches it to the current chat."""

from __future__ import annotations

from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from ui import file_open


def open_from_finder(path) -> None:
    QApplication.sendEvent(QApplication.instance(), QFileOpenEvent(str(path)))


def test_an_opened_image_attaches_to_the_current_chat(qtbot, memory_backend, window_for, png_file):
    window = window_for(memory_backend)
    file_open.install(QApplication.instance(), window)
    open_from_finder(png_file)
    qtbot.waitUntil(lambda: len(window.composer.attachments()) == 1, timeout=10_000)
    attachment = window.composer.attachments()[0]
    assert (attachment.kind, attachment.name) == ("image", png_file.name)


def test_files_opened_before_the_window_exists_attach_once_it_does(
    qtbot, memory_backend, window_for, png_file, wav_file
):
    file_open.install(QApplication.instance()).set_window(None)  # at launch, before the window
    open_from_finder(png_file)
    open_from_finder(wav_file)
    window = window_for(memory_backend)
    assert window.composer.attachments() == []
    file_open.install(QApplication.instance(), window)
    qtbot.waitUntil(lambda: len(window.composer.attachments()) == 2, timeout=10_000)
    assert sorted(a.kind for a in window.composer.attachments()) == ["audio", "image"]


def test_a_file_the_app_cannot_read_is_refused_with_a_reason(
    qtbot, memory_backend, window_for, text_file
):
    window = window_for(memory_backend)
    file_open.install(QApplication.instance(), window)
    open_from_finder(text_file)
    qtbot.waitUntil(lambda: bool(window.composer.rejections), timeout=10_000)
    assert text_file.name in window.composer.rejections[-1]
    assert window.composer.attachments() == []


def test_the_application_has_one_handler(qapp):
    assert file_open.install(qapp) is file_open.install(qapp)
