"""Render the documentation screenshots into docs/screenshots/ (run under Xvfb or offscreen).

    .venv/bin/python packaging/screenshots.py            # offscreen platform
    xvfb-run -a .venv/bin/python packaging/screenshots.py --platform xcb   # a real X server

Shows: the first-run screen (real app layer, no model), a conversation with an image, an
audio clip, a thinking section, a tool card and a code block (in light and dark), the
settings dialog (the real settings), and the webcam recorder (synthetic camera).
"""

from __future__ import annotations

import argparse
import math
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


def populate(backend) -> str:
    from app.engines.contract import GenerationStats
    from ui.backend import AttachmentView, MessageView, ToolCardView

    tmp = Path(tempfile.mkdtemp(prefix="gemma-desk-shots-"))
    from PySide6.QtGui import QImage

    image_path = sample_image(tmp / "hills.png")
    image = QImage(str(image_path))
    peaks = [
        0.15 + 0.8 * abs(math.sin(i / 4.0)) * (0.6 + 0.4 * math.sin(i / 13.0)) for i in range(64)
    ]
    older = backend.new_conversation()
    backend.rename_conversation(older, "Trip planning for Lisbon")
    other = backend.new_conversation()
    backend.rename_conversation(other, "Explain Rust lifetimes")
    cid = backend.new_conversation()
    backend.rename_conversation(cid, "What is in this photo and clip?")
    backend.add_message(cid, MessageView("u1", "user", "What is in this photo, and what note is this clip?",
        attachments=[AttachmentView("image", "hills.png", image_path, width=640, height=420, thumbnail=image),
                     AttachmentView("audio", "voice.wav", None, duration_s=3.0, waveform=peaks)]))  # fmt: skip
    backend.add_message(cid, MessageView("a1", "assistant", CONVERSATION_ANSWER,
        thinking="The user attached an image and an audio clip. The image: green hills, blue sky, "
                 "a yellow sun top right. The audio: a pure tone; its period is about 2.27 ms, so "
                 "about 440 Hz. I'll answer both and show how to verify the pitch.",
        thinking_seconds=4.2,
        tools=[ToolCardView("measure_pitch", {"file": "voice.wav"}, {"hz": 440.0}, done=True)],
        stats=GenerationStats(generated_tokens=212, decode_tps=38.4, context_tokens=1460,
                              context_limit=8192)))  # fmt: skip
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
    from ui.backend import RunStats
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

    # 2. A conversation, light and dark.
    for dark, name in ((False, "conversation.png"), (True, "conversation-dark.png")):
        theme.apply(app, dark=dark)
        demo = MemoryBackend()
        cid = populate(demo)
        window = MainWindow(demo)
        window.resize(1100, 860)
        window.show()
        window.sidebar.refresh(select=cid)
        window.status_line.set_stats(RunStats(38.4, 1460, 8192, 7_420_000_000))
        answer = window.chat.message_widgets()[-1]
        answer.thinking.set_expanded(True)
        settle()
        window.chat.verticalScrollBar().setValue(0)
        save(window, name)
        window.close()

    # 5. Webcam recorder, recording with a synthetic camera.
    theme.apply(app, dark=False)
    demo = MemoryBackend()
    recorder = WebcamDialog(demo)
    recorder.show()
    settle(400)
    recorder.toggle_recording()
    settle(1200)
    save(recorder, "webcam-recorder.png")
    recorder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
