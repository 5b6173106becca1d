"""Render the documentation screenshots into docs/screenshots/ (run under Xvfb or offscreen).

    .venv/bin/python packaging/screenshots.py            # offscreen platform
    xvfb-run -a .venv/bin/python packaging/screenshots.py --platform xcb   # a real X server

Shows: the first-run screen (real app layer, no model); a conversation made by a real run
of the app over a tiny random test checkpoint whose answers are scripted (an image, an
audio clip and a PDF ingested, thinking, a code block, a table, typeset math, an answer regenerated so
it shows "‹ 2/2 ›"; light and dark); the assistants, the trash and the Undo toast; the
settings (real) and Settings ▸ Devices and the webcam recorder (demo devices). Every
picture with anything not real says so in a yellow band.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample_image(path: Path) -> Path:
    """A small original picture: sky, sun, hills."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 420))
    draw = ImageDraw.Draw(image)
    for y in range(420):
        draw.line([(0, y), (640, y)], fill=(90 + y // 6, 150 + y // 8, 230 - y // 10))
    draw.ellipse([470, 50, 570, 150], fill=(255, 214, 90))
    draw.polygon([(0, 420), (0, 300), (180, 220), (360, 320), (520, 250), (640, 300), (640, 420)],
                 fill=(70, 140, 80))  # fmt: skip
    draw.polygon([(0, 420), (0, 360), (260, 300), (640, 380), (640, 420)], fill=(50, 110, 60))
    image.save(path)
    return path


CONVERSATION_ANSWER = """Here is what I see and hear:

- The **photo** shows rolling green hills under a clear sky, with the sun in the upper right.
- The **audio clip** is a steady tone of about 440 Hz (the note A₄), lasting 3 seconds.

A quick way to check the tone's pitch yourself:

```python
import numpy as np
import soundfile as sf

samples, rate = sf.read("voice.wav")
spectrum = np.abs(np.fft.rfft(samples))
print(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])  # ≈ 440.0
```

| Property | Value |
|---|---|
| Frequency | 440 Hz |
| Period | $T = \\frac{1}{f} \\approx 2.27$ ms |

The wave is $x(t) = \\sin(2\\pi f t)$ with $f = 440$."""


DEMO_BAND = (
    "Demo picture: a tiny random test model, its answers scripted; speed and memory "
    "are that tiny model's"
)


def demo_band(window, text: str = DEMO_BAND):
    """A yellow band saying what in the picture is not real: in a window's sidebar, or across
    the bottom of a dialog."""
    from PySide6.QtWidgets import QLabel

    band = QLabel(text, window)
    band.setObjectName("DemoBanner")
    band.setWordWrap(True)
    band.setStyleSheet("background: #f5c518; color: #1d1d1f; font-weight: 600; padding: 6px 10px;"
                       " border-radius: 6px;")  # fmt: skip
    sidebar = getattr(window, "sidebar", None)
    if sidebar is not None:
        band.setFixedWidth(sidebar.width() - 20)
        band.adjustSize()
        corner = sidebar.mapTo(window, sidebar.rect().bottomLeft())
        band.move(corner.x() + 10, corner.y() - band.height() - 50)
    else:
        band.setFixedWidth(window.width() - 24)
        band.adjustSize()
        band.move(12, window.height() - band.height() - 52)
    band.show()
    band.raise_()
    return band


def tone_wav(path: Path) -> Path:
    import numpy as np
    import soundfile

    t = np.arange(3 * 16_000) / 16_000
    soundfile.write(path, (0.4 * np.sin(2 * np.pi * 440 * t)).astype("float32"), 16_000)
    return path


def sample_pdf(path: Path) -> Path:
    """A short original three-page PDF (a document chip with its pages and tokens)."""
    from tests.app.document_sources import write_pdf

    pages = [f"Field notes, page {n}\nHills, sky and a tuning fork: observations {n}." for n in
             (1, 2, 3)]  # fmt: skip
    return write_pdf(path, pages)


def real_run(backend, tmp: Path, settle) -> str:
    """A conversation made by the real app over the tiny checkpoint: attachments ingested,
    an answer with thinking, then regenerated (so it has two versions)."""
    from tests.doubles import script_turns

    service = backend.session.service
    attachments = [backend.ingest_path(sample_image(tmp / "hills.png")),
                   backend.ingest_path(tone_wav(tmp / "voice.wav")),
                   backend.ingest_path(sample_pdf(tmp / "field-notes.pdf"))]  # fmt: skip
    older = backend.new_conversation()
    backend.rename_conversation(older, "Trip planning for Lisbon")
    other = backend.new_conversation("Code reviewer")
    backend.rename_conversation(other, "Review: retry loop in fetch()")
    cid = backend.new_conversation()
    backend.set_chat_settings(cid, thinking=True)
    thought = (
        "<|channel>thought\nAn image and an audio clip. The picture: green hills, blue sky, "
        "a yellow sun. The clip: a pure tone; period about 2.27 ms, so 440 Hz.<channel|>"
    )
    script_turns(service, [thought + "A first, shorter answer.", thought + CONVERSATION_ANSWER])
    backend.send(cid, "What is in this photo, and what note is this clip?", attachments)
    while backend.is_generating(cid):
        settle(100)
    backend.regenerate(cid, "")
    while backend.is_generating(cid):
        settle(100)
    settle(300)
    return cid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    os.environ["QT_QPA_PLATFORM"] = args.platform
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="gemma-desk-data-"))
    os.environ["GEMMA_DESK_CONFIG_DIR"] = str(data / "config")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from ui import theme
    from ui.app_backend import AppBackend
    from ui.main_window import MainWindow
    from ui.memory_backend import MemoryBackend
    from ui.webcam_dialog import WebcamDialog

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("Gemma Desk")

    def settle(ms: int = 300) -> None:
        loop = QEventLoop()  # not app.quit(): in Qt 6 that closes every window
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def save(widget, name: str) -> None:
        settle()
        path = out / name
        widget.grab().save(str(path))
        print("wrote", path)

    # 1. First run: the real app layer with no model.
    theme.apply(app, dark=False)
    real = AppBackend(data_dir=str(data / "first-run"))
    window = MainWindow(real)
    window.resize(1100, 760)
    window.show()
    save(window, "first-run.png")
    # 4. Settings: every real setting.
    dialog = window.open_settings()
    dialog.resize(620, 560)
    save(dialog, "settings.png")
    dialog.close()
    window.close()
    real.shutdown()

    # 2. A conversation, light and dark: the real app over the tiny checkpoint, scripted.
    from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint
    from tests.doubles import scripted_factory
    from ui.assistants import AssistantsDialog
    from ui.trash_dialog import TrashDialog

    tmp = Path(tempfile.mkdtemp(prefix="gemma-desk-shots-"))
    checkpoint = write_tiny_checkpoint(tmp / "tiny-gemma4", seed=0, dtype="float32")
    backend = AppBackend(data_dir=str(data / "demo"), engine_factory=scripted_factory())
    backend.session.settings_store.update(max_tokens=2048, temperature=0.0)
    backend.load_model(str(checkpoint))
    while backend.model_status().state != "ready":
        settle(100)
    cid = real_run(backend, tmp, settle)
    for dark, name in ((False, "conversation.png"), (True, "conversation-dark.png")):
        theme.apply(app, dark=dark)
        window = MainWindow(backend)
        window.resize(1100, 1040)
        window.show()
        window.sidebar.refresh(select=cid)
        settle()
        answer = window.chat.message_widgets()[-1]
        answer.thinking.set_expanded(True)
        demo_band(window)
        settle()
        bar = window.chat.verticalScrollBar()
        bar.setValue(bar.maximum())  # the answer's end: its versions ‹ 2/2 › and numbers
        save(window, name)
        if not dark:  # 3. Assistants, and the trash with a chat just deleted (its toast)
            dialog = AssistantsDialog(backend, window)
            dialog.show()
            dialog.refresh(select="Code reviewer")
            save(dialog, "assistants.png")
            dialog.close()
            trashed = [s.id for s in backend.conversations() if s.id != cid]
            window.sidebar.delete(trashed[0], confirm=False)
            save(window, "deleted-toast.png")
            trash = TrashDialog(backend, window)
            trash.show()
            demo_band(trash, "Demo picture: a chat deleted a moment ago")
            save(trash, "trash.png")
            trash.close()
            backend.undo_delete()
        window.hide()
        window.deleteLater()
    theme.apply(app, dark=False)
    backend.shutdown()

    # 4. Settings ▸ Devices, with the demo backend's devices (this machine has none).
    demo = MemoryBackend()
    window = MainWindow(demo)
    dialog = window.open_settings()
    dialog.resize(620, 560)
    dialog.tabs.setCurrentWidget(dialog.devices)
    dialog.devices.mic.setCurrentIndex(1)
    dialog.devices.mic_test.setChecked(True)
    dialog.devices.camera_test.setChecked(True)
    settle(700)
    demo_band(dialog, "Demo picture: demo devices, synthetic level and camera")
    save(dialog, "devices.png")
    dialog.close()
    window.close()

    # 5. Webcam recorder, recording with a synthetic camera.
    theme.apply(app, dark=False)
    demo = MemoryBackend()
    recorder = WebcamDialog(demo)
    recorder.show()
    demo_band(recorder, "Demo picture: a synthetic camera")
    settle(400)
    recorder.toggle_recording()
    settle(1200)
    save(recorder, "webcam-recorder.png")
    recorder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
