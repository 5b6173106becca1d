"""The window over the real app layer and the tiny checkpoint: what a user does, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from tests.ui.conftest import write_video


def drop_files(widget, paths: list[Path]) -> bool:
    """Drag Finder-style file URLs onto `widget` and drop them (enter, then drop, as Qt does)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    copy, none = Qt.DropAction.CopyAction, Qt.MouseButton.NoButton
    enter = QDragEnterEvent(QPoint(10, 10), copy, mime, none, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(10, 10), copy, mime, none, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop.isAccepted()


def send_text(qtbot, window, text: str) -> None:
    window.composer.input.setPlainText(text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def assistant_widgets(window):
    return [w for w in window.chat.message_widgets() if w.message.role == "assistant"]


def wait_idle(qtbot, window, timeout: int = 60_000) -> None:
    qtbot.waitUntil(
        lambda: not window.backend.is_generating(window.conversation_id), timeout=timeout
    )
    qtbot.waitUntil(
        lambda: all(not w.message.streaming for w in assistant_widgets(window)), timeout=timeout
    )


def test_sent_message_streams_an_answer_from_the_model(qtbot, window_for, app_backend_for):
    window = window_for(app_backend_for())
    assert window.pages.currentWidget() is window.chat_page
    send_text(qtbot, window, "Hello there")
    qtbot.waitUntil(lambda: len(assistant_widgets(window)) == 1, timeout=10_000)
    wait_idle(qtbot, window)
    answer = assistant_widgets(window)[0]
    stored = window.backend.messages(window.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].text == "Hello there"
    assert answer.message.text == stored[1].text
    assert answer.message.text or answer.message.error  # a random tiny model may say little
    assert "tok/s" in window.status_line.speed_label.text()


def test_dropped_image_audio_and_video_reach_the_message_and_the_model(
    qtbot, window_for, app_backend_for, png_file, wav_file, mp4_file
):
    backend = app_backend_for()
    window = window_for(backend)
    assert drop_files(window.composer, [png_file, wav_file, mp4_file])
    qtbot.waitUntil(lambda: window.composer.pending_ingests == 0, timeout=30_000)
    assert window.composer.rejections == []
    assert len(window.composer.chips) == 3
    assert sorted(c.attachment.kind for c in window.composer.chips) == ["audio", "image", "video"]
    send_text(qtbot, window, "What is in these?")
    wait_idle(qtbot, window)
    user = window.chat.message_widgets()[0]
    assert sorted(card.attachment.kind for card in user.attachment_cards) == [
        "audio",
        "image",
        "video",
    ]
    stored = backend.messages(window.conversation_id)[0]
    assert sorted(a.name for a in stored.attachments) == sorted(
        p.name for p in (png_file, wav_file, mp4_file)
    )
    inputs = backend.engines[0].prompts[-1]
    assert inputs.get("pixel_values") is not None
    assert inputs.get("input_features") is not None
    assert inputs.get("pixel_values_videos") is not None
    types = np.asarray(inputs["mm_token_type_ids"]).reshape(-1)
    assert len(set(types.tolist()) - {0}) == 3  # image, video and audio soft tokens are all in


def test_a_rejected_file_is_explained_and_the_good_ones_still_attach(
    qtbot, window_for, app_backend_for, png_file, tmp_path
):
    blob = tmp_path / "firmware.bin"  # neither media nor a document
    blob.write_bytes(bytes(range(256)) * 8)
    window = window_for(app_backend_for())
    assert drop_files(window.composer, [blob, png_file])
    qtbot.waitUntil(
        lambda: window.composer.pending_ingests == 0 and bool(window.composer.chips), timeout=30_000
    )
    assert [c.attachment.name for c in window.composer.chips] == [png_file.name]
    label = window.composer.rejection_label
    assert not label.isHidden()
    assert blob.name in label.text()
    assert "not" in label.text().lower()


def test_push_to_talk_with_an_injected_source_yields_an_audio_attachment(
    qtbot, window_for, app_backend_for, tmp_path
):
    from tests.ui.conftest import write_tone

    audio = write_tone(tmp_path / "speech.wav", seconds=3.0)
    window = window_for(app_backend_for(audio=audio))
    levels = []
    qtbot.mouseMove(window.composer.mic_button)
    window.composer.mic_button.pressed.emit()
    assert window.push_to_talk.recording
    window.push_to_talk.session.level.connect(levels.append)
    qtbot.wait(900)
    assert window.push_to_talk.bar is not None
    assert "s left" in window.push_to_talk.bar.countdown.text()
    window.composer.mic_button.released.emit()
    qtbot.waitUntil(lambda: len(window.composer.chips) == 1, timeout=20_000)
    attachment = window.composer.chips[0].attachment
    assert attachment.kind == "audio"
    assert 0.3 < attachment.duration_s < 3.1
    assert attachment.waveform and max(attachment.waveform) > 0.1
    assert levels and max(levels) > 0.5
    assert not window.push_to_talk.recording


def test_webcam_recorder_with_a_file_backed_source_yields_a_clip(
    qtbot, window_for, app_backend_for, tmp_path
):
    video = write_video(tmp_path / "camera.mp4", seconds=5.0, fps=8, size=(96, 64))
    window = window_for(app_backend_for(video=video))
    dialog = window.open_webcam()
    qtbot.waitUntil(lambda: dialog.frames_shown > 2, timeout=10_000)
    qtbot.mouseClick(dialog.record_button, Qt.MouseButton.LeftButton)
    qtbot.wait(2200)
    qtbot.mouseClick(dialog.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.clip is not None, timeout=20_000)
    assert dialog.clip.kind == "video"
    assert dialog.clip.duration_s and dialog.clip.duration_s >= 1.0
    assert dialog.attach_button.isEnabled()
    qtbot.mouseClick(dialog.attach_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.composer.chips) == 1, timeout=5_000)
    assert window.composer.chips[0].attachment.kind == "video"


def test_stop_ends_the_answer_mid_stream(qtbot, window_for, app_backend_for):
    backend = app_backend_for(delay_s=0.05, max_tokens=400)
    window = window_for(backend)
    send_text(qtbot, window, "Tell me a long story")
    qtbot.waitUntil(
        lambda: bool(assistant_widgets(window) and assistant_widgets(window)[0].message.text),
        timeout=20_000,
    )
    assert window.composer.generating
    window.stop_action.trigger()
    wait_idle(qtbot, window)
    answer = backend.messages(window.conversation_id)[-1]
    assert answer.stats is not None and answer.stats.stop_reason == "cancelled"
    assert answer.stats.generated_tokens < 400
    assert not window.composer.generating


def test_regenerate_replaces_the_answer(qtbot, window_for, app_backend_for):
    backend = app_backend_for()
    window = window_for(backend)
    send_text(qtbot, window, "Say something")
    wait_idle(qtbot, window)
    first = backend.messages(window.conversation_id)[-1]
    qtbot.mouseClick(assistant_widgets(window)[0].regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: backend.messages(window.conversation_id)[-1].id != first.id, timeout=10_000
    )
    wait_idle(qtbot, window)
    messages = backend.messages(window.conversation_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[-1].id != first.id
    assert len(window.chat.message_widgets()) == 2


def test_edit_and_resend_replaces_the_question_and_answers_it(qtbot, window_for, app_backend_for):
    backend = app_backend_for()
    window = window_for(backend)
    send_text(qtbot, window, "First question")
    wait_idle(qtbot, window)
    user_widget = window.chat.message_widgets()[0]
    qtbot.mouseClick(user_widget.edit_button, Qt.MouseButton.LeftButton)
    assert user_widget.editor is not None
    user_widget.editor.setPlainText("Second question")
    user_widget._submit_edit()
    qtbot.waitUntil(
        lambda: backend.messages(window.conversation_id)[0].text == "Second question",
        timeout=10_000,
    )
    wait_idle(qtbot, window)
    messages = backend.messages(window.conversation_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert window.chat.message_widgets()[0].message.text == "Second question"
    assert backend.engines[0].prompts[-1]["prompt"].count("Second question") == 1
    assert "First question" not in backend.engines[0].prompts[-1]["prompt"]


def test_switching_conversations_while_one_generates(qtbot, window_for, app_backend_for):
    backend = app_backend_for(delay_s=0.03, max_tokens=60)
    window = window_for(backend)
    first = window.conversation_id
    send_text(qtbot, window, "Keep talking")
    qtbot.waitUntil(
        lambda: bool(assistant_widgets(window) and assistant_widgets(window)[0].message.text),
        timeout=20_000,
    )
    window.new_action.trigger()
    second = window.conversation_id
    assert second != first
    assert window.chat.message_widgets() == []
    assert not window.composer.generating
    window.sidebar.refresh(select=first)
    assert window.conversation_id == first
    qtbot.waitUntil(lambda: not backend.is_generating(first), timeout=60_000)
    qtbot.wait(100)
    shown = assistant_widgets(window)[0].message.text
    assert shown == backend.messages(first)[-1].text
    assert backend.messages(second) == []


def test_an_answer_that_ends_after_shutdown_is_dropped_not_shown(qtbot, tmp_path):
    import threading

    from app.controller_signals import ControllerSignals
    from tests.doubles import scripted_factory
    from ui.app_backend import AppBackend

    backend = AppBackend(data_dir=str(tmp_path / "data"), engine_factory=scripted_factory())
    finished = []
    backend.message_finished.connect(lambda *args: finished.append(args))
    signals = backend.findChild(ControllerSignals)
    worker = threading.Thread(target=lambda: signals.message_finished.emit(1, 1, "done", ""))
    worker.start()  # the engine thread's event is queued for the UI thread ...
    worker.join()
    backend.shutdown()  # ... which closes the storage before it runs
    qtbot.wait(50)  # an exception in the slot would fail the test here
    assert finished == []
