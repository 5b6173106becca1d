"""Fixtures for the GUI tests: a themed QApplication, backends, and small media files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real config folder (the data-folder pointer lives there)."""
    monkeypatch.setenv("GEMMA_DESK_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GEMMA_DESK_APPEARANCE", "light")


@pytest.fixture(autouse=True)
def _theme(qapp):
    from ui import theme

    theme.apply(qapp, dark=False)
    yield


@pytest.fixture
def memory_backend(qapp):
    from ui.memory_backend import MemoryBackend

    backend = MemoryBackend()
    yield backend
    backend.shutdown()


@pytest.fixture
def window_for(qtbot):
    """Build a shown MainWindow over a given backend."""
    from ui.main_window import MainWindow

    def build(backend):
        window = MainWindow(backend)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return build


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def write_tone(path: Path, seconds: float = 1.5, rate: int = 16_000, freq: float = 440.0) -> Path:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    return write_tone(tmp_path / "voice.wav")


def write_video(path: Path, seconds: float = 2.0, fps: int = 4, size=(64, 48)) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(int(seconds * fps)):
            frame = np.full((size[1], size[0], 3), (index * 30) % 255, dtype=np.uint8)
            frame[:, : (index * 7) % size[0]] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def mp4_file(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4")


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes, not media\n" * 10)
    return path


class RecordingEngine:
    """Wraps the real engine: records the processor's inputs of every prompt and can pace
    the stream (`delay_s` per event) so a test can act while an answer is still streaming."""

    def __init__(self, engine, delay_s: float = 0.0) -> None:
        self._engine = engine
        self.delay_s = delay_s
        self.prompts: list[dict] = []
        processor = engine.engine.processor  # the model library's engine inside
        original = processor.apply_chat_template

        def recording(*args, **kwargs):
            result = original(*args, **kwargs)
            self.prompts.append(dict(result))
            return result

        processor.apply_chat_template = recording

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def stream(self, *args, **kwargs):
        import time

        for event in self._engine.stream(*args, **kwargs):
            if self.delay_s:
                time.sleep(self.delay_s)
            yield event


@pytest.fixture
def app_backend_for(qtbot, tmp_path: Path, tiny_checkpoint: Path):
    """An AppBackend over the tiny checkpoint with file-backed capture sources."""
    from app.capture.sources import FileAudioSource, FileVideoSource
    from tests.doubles import scripted_factory
    from ui.app_backend import AppBackend

    made = []

    def build(delay_s: float = 0.0, audio: Path | None = None, video: Path | None = None,
              max_tokens: int = 24, tuning: dict | None = None,
              mic_speed: float | None = 1.0):  # fmt: skip
        """`tuning`: extra `Engine.load` keywords (e.g. a small `prefill_chunk`)."""
        engines: list[RecordingEngine] = []

        def factory(spec, progress=None):
            engine = RecordingEngine(scripted_factory(**(tuning or {}))(spec, progress), delay_s)
            engines.append(engine)
            return engine

        backend = AppBackend(
            data_dir=str(tmp_path / f"data{len(made)}"),
            engine_factory=factory,
            mic_source_factory=(lambda: FileAudioSource(audio, speed=mic_speed)) if audio else None,
            camera_source_factory=(lambda: FileVideoSource(video, speed=1.0)) if video else None,
            clip_audio=False,
        )
        backend.session.settings_store.update(max_tokens=max_tokens, seed=0)
        backend.engines = engines
        made.append(backend)
        backend.load_model(str(tiny_checkpoint))
        qtbot.waitUntil(lambda: backend.model_status().state == "ready", timeout=60_000)
        return backend

    yield build
    for backend in made:
        backend.shutdown()


@pytest.fixture
def fake_app_backend(qtbot, tmp_path: Path):
    """An AppBackend over the real app layer (storage, session, controller) whose engine is
    the in-memory `FakeEngine`: fast enough for many GUI tests of what the app stores."""
    from tests.doubles import fake_factory
    from ui.app_backend import AppBackend

    factory = fake_factory(delay=0.01, thinking="")
    backend = AppBackend(data_dir=str(tmp_path / "data"), engine_factory=factory)
    backend.engines = factory.engines
    backend.load_model("fake-model")
    qtbot.waitUntil(lambda: backend.model_status().state == "ready", timeout=10_000)
    yield backend
    backend.shutdown()
