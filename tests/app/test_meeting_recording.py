"""Record mode through the session: a meeting of any length to disk, attached when it stops;
a recording a killed app left unfinished is repaired when the app starts."""

from __future__ import annotations

import threading

import pytest
import soundfile

from app.capture.disk_recorder import CrashSafeWavWriter
from app.capture.sources import ArrayAudioSource
from app.session import AppSession, Notice
from tests.app.media_sources import tone
from tests.app.test_microphone import fake_sounddevice


def test_a_meeting_longer_than_a_clip_is_recorded_to_disk_and_attached(tmp_path):
    source = ArrayAudioSource(tone(440, 70.0, 48_000), 48_000, block_frames=9600)
    done = threading.Event()
    result = {}
    with AppSession(tmp_path / "data") as session:
        meeting = session.record_meeting(
            source,
            on_finished=lambda attachment: (result.update(attachment=attachment), done.set()),
            on_failed=lambda reason: (result.update(error=reason), done.set()),
        )
        meeting.start()
        assert source.wait_done(30)
        meeting.stop()
        assert done.wait(30) and "error" not in result

        attachment = result["attachment"]
        assert attachment.kind == "audio" and attachment.duration_s == pytest.approx(70.0)
        assert attachment.meta["long"] and attachment.meta["clips"] == 3
        assert meeting.path.parent == session.recordings_folder and meeting.path.exists()


def test_an_unfinished_recording_is_repaired_when_the_app_starts(tmp_path):
    folder = tmp_path / "data" / "recordings"
    folder.mkdir(parents=True)
    writer = CrashSafeWavWriter(folder / "Meeting 2026-05-28 10.00.00.wav", 16_000)
    writer.write(tone(440, 3.0, 16_000))  # the app died before the header was brought up to date
    notices = []

    with AppSession(tmp_path / "data") as session:
        session.subscribe(lambda event: notices.append(event))
        session.start()

    data, rate = soundfile.read(str(writer.path))
    assert len(data) == 3 * 16_000 and rate == 16_000
    assert any(isinstance(n, Notice) and "interrupted" in n.text for n in notices)


def test_a_meeting_is_recorded_from_the_microphone_chosen_in_settings(tmp_path, monkeypatch):
    opened = fake_sounddevice(monkeypatch)
    failures = []
    with AppSession(tmp_path / "data") as session:
        session.settings_store.update(mic_device="USB Mic")
        meeting = session.record_meeting(on_finished=lambda a: None, on_failed=failures.append)
        meeting.start()
        meeting.cancel()

    assert not failures and meeting.device_name == "USB Mic"
    assert opened[0]["device"] == "USB Mic" and opened[0]["samplerate"] == 44_100


def test_a_meeting_can_use_another_microphone_than_the_settings_one(tmp_path, monkeypatch):
    opened = fake_sounddevice(monkeypatch)
    with AppSession(tmp_path / "data") as session:
        session.settings_store.update(mic_device="USB Mic")
        meeting = session.record_meeting(device="MacBook Mic", on_finished=lambda a: None,
                                         on_failed=lambda reason: None)  # fmt: skip
        meeting.start()
        meeting.cancel()

    assert meeting.device_name == "MacBook Mic" and opened[0]["device"] == "MacBook Mic"


def test_a_chosen_microphone_that_is_gone_is_named_in_the_failure(tmp_path, monkeypatch):
    fake_sounddevice(monkeypatch)
    failures = []
    with AppSession(tmp_path / "data") as session:
        session.settings_store.update(mic_device="Conference Speakerphone")
        meeting = session.record_meeting(on_finished=lambda a: None, on_failed=failures.append)
        meeting.start()

    assert failures == [
        "The microphone “Conference Speakerphone” is not connected. "
        "Choose another in Settings ▸ Devices."
    ]
