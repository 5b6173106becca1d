"""The microphone's resampling to 16 kHz, checked against known tones.

A tone inside the 16 kHz band keeps its frequency and level; a tone above 8 kHz (the new
Nyquist frequency) disappears instead of folding back as an alias.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.capture.microphone import MicrophoneRecorder, resample
from app.capture.sources import ArrayAudioSource
from tests.app.media_sources import dominant_frequency, rms, tone

TARGET = 16_000


def steady(waveform: np.ndarray, rate: int) -> np.ndarray:
    """Drop the first and last 0.1 s (filter start-up and tail)."""
    edge = rate // 10
    return waveform[edge:-edge]


@pytest.mark.parametrize("native_rate", [44_100, 48_000, 22_050, 8_000])
def test_an_in_band_tone_keeps_its_frequency_and_level(native_rate):
    source = tone(1000, 2.0, native_rate, amplitude=0.5)
    out = resample(source, native_rate, TARGET)
    assert len(out) == int(np.ceil(len(source) * TARGET / native_rate))
    assert dominant_frequency(steady(out, TARGET), TARGET) == pytest.approx(1000, abs=1)
    assert rms(steady(out, TARGET)) == pytest.approx(rms(source), rel=0.01)


@pytest.mark.parametrize("native_rate", [44_100, 48_000])
def test_a_tone_just_below_8khz_passes(native_rate):
    source = tone(6000, 1.0, native_rate, amplitude=0.5)
    out = steady(resample(source, native_rate, TARGET), TARGET)
    assert dominant_frequency(out, TARGET) == pytest.approx(6000, abs=2)
    assert rms(out) == pytest.approx(rms(source), rel=0.02)


@pytest.mark.parametrize("native_rate, freq", [(44_100, 12_000), (48_000, 12_000), (44_100, 9_000)])
def test_a_tone_above_8khz_vanishes_without_aliasing(native_rate, freq):
    source = tone(freq, 1.0, native_rate, amplitude=0.5)
    out = steady(resample(source, native_rate, TARGET), TARGET)
    # At least 60 dB down: a naive decimation would fold 12 kHz onto 4 kHz at full level.
    assert rms(out) < rms(source) * 1e-3


def test_the_recorder_keeps_speech_band_content_and_drops_the_rest():
    rate = 44_100
    mix = tone(1000, 1.5, rate, amplitude=0.3) + tone(12_000, 1.5, rate, amplitude=0.3)
    source = ArrayAudioSource(mix, rate, block_frames=441)
    recorder = MicrophoneRecorder(lambda: source)
    recorder.start()
    assert source.wait_done(10.0)
    out = steady(recorder.stop().waveform, TARGET)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1.0 / TARGET)
    at_1k = spectrum[np.argmin(np.abs(freqs - 1000))]
    alias_band = spectrum[(freqs > 3_500) & (freqs < 4_500)].max()  # where 12 kHz would fold
    assert dominant_frequency(out, TARGET) == pytest.approx(1000, abs=1)
    assert alias_band < at_1k * 1e-3
    assert rms(out) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
