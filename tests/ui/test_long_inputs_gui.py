"""Long inputs in the window over the real app layer and the tiny checkpoint: document chips
with pages and tokens, a transcription's progress with Stop keeping what was done, saving
the transcript, and record mode."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tests.app.document_sources import write_pdf
from tests.ui.test_app_integration import drop_files, send_text, wait_idle


def chips_of(window) -> list:
    return list(window.composer.chips)


def test_dropped_documents_show_chips_with_pages_and_tokens(
    qtbot, window_for, app_backend_for, tmp_path, tiny_checkpoint
):
    from app.documents import load_document, token_counter
    from mlx_model.processing import Tokenizer

    pdf = write_pdf(tmp_path / "report.pdf", ["Revenue grew by 12 percent.", "Costs fell."])
    repo = tmp_path / "repo"
    (repo / "dist").mkdir(parents=True)
    (repo / ".gitignore").write_text("dist/\n")
    (repo / "app.py").write_text("print('hello')\n")
    (repo / "dist" / "bundle.js").write_text("var x = 1;\n")
    backend = app_backend_for(max_tokens=2)
    window = window_for(backend)

    assert drop_files(window.composer, [pdf, repo])
    qtbot.waitUntil(lambda: window.composer.pending_ingests == 0, timeout=30_000)

    assert window.composer.rejections == []
    sent = chips_of(window)  # in the order their reading finished
    report, folder = sorted(sent, key=lambda c: c.attachment.name)[::-1]
    count = token_counter(Tokenizer.from_pretrained(tiny_checkpoint))
    tokens = load_document(pdf).token_count(count)
    assert report.label.text().endswith(f"2 pages · {tokens:,} tokens")  # the model's own count
    assert "2 files · " in folder.label.text()  # .gitignore and app.py; dist/ is ignored
    assert "Document, report.pdf, 2 pages" in report.accessibleName()

    send_text(qtbot, window, "How did revenue change?")
    wait_idle(qtbot, window)
    user = window.chat.message_widgets()[0]
    assert [card.caption.text() for card in user.attachment_cards] == [
        chip.attachment.detail + f" · {chip.attachment.tokens:,} tokens" for chip in sent
    ]
    prompt_ids = backend.engines[0].prompts[-1]["input_ids"].reshape(-1).tolist()
    prompt = Tokenizer.from_pretrained(tiny_checkpoint).decode(prompt_ids)
    assert "Revenue grew by 12 percent." in prompt and "print('hello')" in prompt
    assert "bundle.js" not in prompt


def test_transcript_progress_shows_the_clips_and_stop_keeps_what_was_transcribed(
    qtbot, window_for, app_backend_for, tmp_path, monkeypatch
):
    from tests.app.recording_sources import write_spoken_recording

    meeting = write_spoken_recording(tmp_path / "meeting.wav", 360.0)
    backend = app_backend_for(max_tokens=2)  # twelve clips of audio do not fit the 8K context
    window = window_for(backend)
    assert drop_files(window.composer, [meeting])
    qtbot.waitUntil(lambda: window.composer.pending_ingests == 0, timeout=30_000)
    assert chips_of(window)[0].label.text() == "meeting.wav  6:00"

    send_text(qtbot, window, "What was decided?")
    progress = window.transcript_progress

    def two_clips_done() -> bool:
        found = re.search(r"clip (\d+) of 12", progress.label.text())
        return progress.isVisible() and found is not None and int(found.group(1)) >= 2

    qtbot.waitUntil(two_clips_done, timeout=60_000)
    assert progress.label.text().startswith("Transcribing meeting.wav: clip ")
    qtbot.mouseClick(progress.cancel_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)

    qtbot.waitUntil(lambda: not progress.isVisible(), timeout=10_000)  # its own queued event
    user, transcript = window.chat.message_widgets()
    kept = transcript.message.transcript
    assert not kept["complete"] and 2 <= len(kept["segments"]) < 12
    assert transcript.role_label.text().startswith("Transcript of meeting.wav (stopped at ")
    lines = transcript.message.text.strip().split("\n\n")
    assert [line[:7] for line in lines] == [f"[0{k // 2}:{k % 2 * 3}0]" for k in range(len(lines))]
    assert transcript.transcript_button.isVisible()

    saved = tmp_path / "meeting.srt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(saved), ""))
    srt = next(a for a in transcript.transcript_button.menu().actions() if "SRT" in a.text())
    srt.trigger()
    assert saved.read_text().count(" --> ") == sum(1 for s in kept["segments"] if s["text"])
    assert "00:00:30,000 --> 00:01:00,000" in saved.read_text()


def test_record_mode_attaches_a_meeting_longer_than_a_clip(
    qtbot, window_for, app_backend_for, tmp_path
):
    from tests.ui.conftest import write_tone

    meeting = write_tone(tmp_path / "standup.wav", seconds=75.0)
    backend = app_backend_for(audio=meeting, mic_speed=None)  # delivered as fast as taken
    window = window_for(backend)

    window.record_action.trigger()
    bar = window.record_bar
    assert bar is not None and bar.isVisible()
    assert bar.toolTip() == "Recording from standup.wav"  # the source's own name
    folder = backend.session.recordings_folder
    wanted = 44 + 75 * 16_000 * 2

    def written() -> int:
        files = list(Path(folder).glob("*.wav"))
        return files[0].stat().st_size if files else 0

    qtbot.waitUntil(lambda: written() >= wanted, timeout=30_000)
    qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(chips_of(window)), timeout=30_000)

    [chip] = chips_of(window)
    assert chip.attachment.kind == "audio" and abs(chip.attachment.duration_s - 75.0) < 0.1
    assert chip.attachment.source.meta["long"] and window.record_bar is None
