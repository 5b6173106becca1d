"""Push-to-talk recording through injectable audio sources (no microphone needed)."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

from app.capture import CaptureUnavailable, PermissionDenied
from app.capture import microphone as mic
from app.capture.microphone import MicrophoneRecorder
from app.capture.sources import ArrayAudioSource, FileAudioSource, SoundDeviceSource
from mlx_model.processing.audio import resample
from tests.app.media_sources import dominant_frequency, rms, speech_wav, tone, wait_until


def record(waveform: np.ndarray, rate: int, **kwargs) -> tuple[MicrophoneRecorder, object]:
    """Press, play the whole waveform through the recorder, release."""
    source = ArrayAudioSource(waveform, rate, block_frames=kwargs.pop("block_frames", 1024))
    recorder = MicrophoneRecorder(lambda: source, **kwargs)
    recorder.start()
    assert source.wait_done(10.0)
    return recorder, recorder.stop()


def test_recording_is_16k_mono_from_a_44k_stereo_source():
    stereo = np.stack([tone(440, 1.5, 44_100), tone(440, 1.5, 44_100)], axis=1)
    _, recording = record(stereo, 44_100)
    assert recording.sample_rate == 16_000
    assert recording.native_rate == 44_100
    assert recording.waveform.ndim == 1
    assert recording.duration_s == pytest.approx(1.5, abs=0.01)
    assert dominant_frequency(recording.waveform, 16_000) == pytest.approx(440, abs=2)


def test_stop_delivers_every_sample_captured_before_release():
    _, recording = record(tone(300, 2.0, 48_000), 48_000, block_frames=333)
    assert len(recording.waveform) == 32_000  # 2 s at 16 kHz, nothing lost between blocks


def test_level_events_follow_the_input_loudness():
    levels = []
    quiet_then_loud = np.concatenate([np.zeros(24_000, np.float32), tone(1000, 0.5, 48_000, 0.5)])
    record(quiet_then_loud, 48_000, on_level=levels.append, level_window_s=0.05)
    assert len(levels) >= 15
    first, last = levels[0], levels[-1]
    assert first.rms == 0.0 and first.dbfs == float("-inf")
    assert last.rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    assert last.peak == pytest.approx(0.5, rel=0.02)
    assert [e.elapsed_s for e in levels] == sorted(e.elapsed_s for e in levels)


def test_levels_arrive_live_while_the_key_is_held():
    source = ArrayAudioSource(tone(500, 0.6, 16_000), 16_000, block_frames=160, speed=1.0)
    levels = []
    recorder = MicrophoneRecorder(lambda: source, on_level=levels.append)
    recorder.start()
    assert wait_until(lambda: len(levels) >= 3, timeout=5.0)
    assert recorder.is_recording
    recorder.stop()
    assert not recorder.is_recording


def test_the_cap_stops_the_recording_with_a_countdown():
    countdown, limited = [], []
    done = threading.Event()

    def on_limit(recording):
        limited.append(recording)
        done.set()

    source = ArrayAudioSource(tone(440, 5.0, 22_050), 22_050, block_frames=512)
    recorder = MicrophoneRecorder(
        lambda: source, max_seconds=3.0, countdown_from=2, on_countdown=countdown.append,
        on_limit=on_limit,
    )  # fmt: skip
    recorder.start()
    assert done.wait(10.0)
    recording = recorder.stop()
    assert recording is limited[0]
    assert recording.truncated
    assert recording.duration_s == pytest.approx(3.0, abs=1e-3)
    assert [e.remaining_s for e in countdown] == [2, 1]
    assert wait_until(lambda: not recorder.is_recording, timeout=5.0)


def test_the_cap_is_taken_from_the_callers_limit():
    _, recording = record(tone(440, 2.0, 16_000), 16_000, max_seconds=0.5)
    assert recording.truncated
    assert recording.duration_s == pytest.approx(0.5, abs=1e-3)


def test_a_recording_shorter_than_the_cap_is_not_truncated():
    _, recording = record(tone(440, 1.0, 16_000), 16_000, max_seconds=30.0)
    assert not recording.truncated


def test_an_all_zero_stream_on_a_mac_explains_how_to_grant_the_permission():
    with pytest.raises(PermissionDenied, match=r"Privacy & Security > Microphone"):
        record(np.zeros(48_000, np.float32), 48_000, platform="darwin")


def test_an_all_zero_stream_elsewhere_is_plain_silence():
    _, recording = record(np.zeros(48_000, np.float32), 48_000, platform="linux")
    assert recording.peak == 0.0
    assert recording.duration_s == pytest.approx(1.0)


def test_cancel_throws_the_audio_away_and_allows_a_new_recording():
    source = ArrayAudioSource(tone(440, 10.0, 16_000), 16_000, speed=1.0)
    recorder = MicrophoneRecorder(lambda: source)
    recorder.start()
    recorder.cancel()
    assert not recorder.is_recording
    _, recording = record(tone(440, 0.5, 16_000), 16_000)
    assert recording.duration_s == pytest.approx(0.5)


def test_recording_writes_a_16_bit_wav(tmp_path):
    import soundfile

    _, recording = record(tone(440, 0.5, 44_100), 44_100)
    path = recording.write_wav(tmp_path / "voice.wav")
    info = soundfile.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    assert info.frames == len(recording.waveform)


def test_speech_survives_the_trip_through_the_recorder(tmp_path):
    wav = speech_wav(tmp_path / "speech.wav")
    source = FileAudioSource(wav, block_frames=441)
    reference = resample(source.waveform[:, 0], source.sample_rate, 16_000)
    recorder = MicrophoneRecorder(lambda: source)
    recorder.start()
    assert source.wait_done(10.0)
    recording = recorder.stop()
    assert recording.native_rate == source.sample_rate != 16_000
    assert len(recording.waveform) == len(reference)
    np.testing.assert_allclose(recording.waveform, reference, atol=1e-6)
    assert rms(recording.waveform) > 0.01  # it is speech, not silence


# ---------------------------------------------------------------- the real device path


class _MissingPortAudio:
    """A meta-path finder that makes `import sounddevice` fail as it does without PortAudio."""

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


@pytest.fixture
def no_portaudio(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_MissingPortAudio(), *sys.meta_path])


def fake_sounddevice(monkeypatch, *, open_error: Exception | None = None):
    """Install a stand-in `sounddevice` module with one output and two input devices."""
    devices = [
        {"name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0, "hostapi": 0},
        {
            "name": "MacBook Mic",
            "max_input_channels": 1,
            "default_samplerate": 48000.0,
            "hostapi": 0,
        },
        {"name": "USB Mic", "max_input_channels": 2, "default_samplerate": 44100.0, "hostapi": 0},
    ]
    opened = []

    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return devices
        if isinstance(device, str):  # a name, as the settings keep it
            [found] = [d for d in devices if d["name"] == device] or [None]
            if found is None:
                raise ValueError(f"No input device matching {device!r}")
            return found
        index = 1 if device is None else device
        return devices[index]

    class InputStream:
        def __init__(self, **kwargs):
            if open_error is not None:
                raise open_error
            opened.append(kwargs)

        def start(self):
            pass

        def stop(self):
            pass

        def close(self):
            pass

    module = types.SimpleNamespace(
        query_devices=query_devices,
        query_hostapis=lambda: [{"name": "Core Audio"}],
        default=types.SimpleNamespace(device=(1, 0)),
        InputStream=InputStream,
        PortAudioError=RuntimeError,
    )
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return opened


def test_without_portaudio_the_microphone_is_reported_unavailable_with_the_reason(no_portaudio):
    status = mic.availability()
    assert not status
    assert "PortAudio" in status.reason
    with pytest.raises(CaptureUnavailable, match="PortAudio"):
        MicrophoneRecorder().start()


def test_device_listing_shows_inputs_only_and_marks_the_default(monkeypatch):
    fake_sounddevice(monkeypatch)
    devices = mic.list_devices()
    assert [d.name for d in devices] == ["MacBook Mic", "USB Mic"]
    assert [d.is_default for d in devices] == [True, False]
    assert devices[1].default_rate == 44_100
    assert mic.availability()


def test_the_real_source_opens_the_chosen_device_at_its_native_rate(monkeypatch):
    opened = fake_sounddevice(monkeypatch)
    source = SoundDeviceSource(2)
    source.start(lambda block: None)
    source.stop()
    assert source.sample_rate == 44_100
    assert opened[0]["samplerate"] == 44_100 and opened[0]["device"] == 2


def test_a_portaudio_error_on_a_mac_says_how_to_grant_access(monkeypatch):
    fake_sounddevice(
        monkeypatch, open_error=RuntimeError("Internal PortAudio error [PaErrorCode -9986]")
    )
    recorder = MicrophoneRecorder(device=1, platform="darwin")
    with pytest.raises(
        PermissionDenied, match=r"System Settings > Privacy & Security > Microphone"
    ):
        recorder.start()
    assert not recorder.is_recording
