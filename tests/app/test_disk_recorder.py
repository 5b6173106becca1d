"""Record mode: the microphone to disk for any length, crash-safe (a killed process leaves a
playable file), parts past WAV's size limit; sources injected as in the other capture tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.capture.disk_recorder import DiskRecorder, repair_wav
from app.capture.sources import ArrayAudioSource
from tests.app.media_sources import dominant_frequency, tone, wait_until


def test_recording_to_disk_keeps_every_sample_at_the_model_rate(tmp_path):
    source = ArrayAudioSource(tone(440, 12.0, 48_000), 48_000, block_frames=4800)
    recorder = DiskRecorder(tmp_path / "meeting.wav", lambda: source)

    recorder.start()
    assert source.wait_done(30)
    files = recorder.stop()

    data, rate = soundfile.read(str(files.paths[0]), dtype="float32")
    assert files.paths == [tmp_path / "meeting.wav"] and rate == 16_000
    assert len(data) == 12 * 16_000 and files.duration_s == pytest.approx(12.0)
    assert dominant_frequency(data[16_000:32_000], 16_000) == pytest.approx(440, abs=2)


def test_long_recordings_continue_in_numbered_parts(tmp_path):
    source = ArrayAudioSource(tone(300, 5.0, 16_000), 16_000, block_frames=1000)
    recorder = DiskRecorder(tmp_path / "talk.wav", lambda: source, max_data_bytes=2 * 16_000 * 2)

    recorder.start()
    assert source.wait_done(30)
    files = recorder.stop()

    assert [p.name for p in files.paths] == ["talk.wav", "talk-2.wav", "talk-3.wav"]
    lengths = [soundfile.info(str(p)).frames for p in files.paths]
    assert lengths == [32_000, 32_000, 16_000]


def test_level_events_report_the_input_while_recording(tmp_path):
    levels = []
    source = ArrayAudioSource(tone(440, 2.0, 16_000, amplitude=0.5), 16_000)
    recorder = DiskRecorder(tmp_path / "x.wav", lambda: source, on_level=levels.append)

    recorder.start()
    assert source.wait_done(30)
    recorder.stop()

    assert levels and all(abs(e.peak - 0.5) < 0.01 for e in levels)


RECORDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from app.capture.disk_recorder import DiskRecorder
    from app.capture.sources import ArrayAudioSource

    rate = 48_000
    t = np.arange(rate * 120) / rate
    source = ArrayAudioSource((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate,
                              block_frames=2400, speed=4.0)
    recorder = DiskRecorder(sys.argv[1], lambda: source, flush_seconds=0.25)
    recorder.start()
    print("recording", flush=True)
    time.sleep(600)
    """
)


def test_killed_recorder_leaves_a_playable_file(tmp_path):
    path = tmp_path / "killed.wav"
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDER_SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout.readline().strip() == b"recording"
        # Four seconds of audio on disk (the source plays at 4x real time).
        assert wait_until(lambda: path.exists() and path.stat().st_size > 44 + 4 * 32_000, 60)
        time.sleep(0.6)  # past a header update
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    data, rate = soundfile.read(str(path), dtype="float32")  # playable as it was left
    assert rate == 16_000 and len(data) >= 4 * 16_000
    assert dominant_frequency(data[:16_000], rate) == pytest.approx(440, abs=2)
    on_disk = (path.stat().st_size - 44) // 2
    assert on_disk - len(data) <= 16_000  # at most the last second is not yet in the header

    seconds = repair_wav(path)
    assert soundfile.info(str(path)).frames == on_disk and seconds == pytest.approx(
        on_disk / 16_000
    )
    assert np.isfinite(soundfile.read(str(path), dtype="float32")[0]).all()
