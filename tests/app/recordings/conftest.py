"""Fixtures for the long-recording tests: a 10-minute spoken recording (espeak-ng), the tiny
checkpoint's processor config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.media_sources import ESPEAK
from tests.app.recording_sources import write_spoken_recording


@pytest.fixture(scope="session")
def spoken_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-minute WAV at espeak-ng's own rate (22.05 kHz): sentences with pauses, repeated."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng) - no synthetic speech")
    return write_spoken_recording(tmp_path_factory.mktemp("speech") / "meeting.wav", 600.0)


@pytest.fixture(scope="session")
def processor_config(tiny_checkpoint: Path):
    from mlx_model.processing import ProcessorConfig

    return ProcessorConfig.from_pretrained(tiny_checkpoint)
