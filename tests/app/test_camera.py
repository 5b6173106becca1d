"""Webcam clips through injectable video sources: files written with OpenCV, frame lists."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.capture import CaptureError, CaptureUnavailable, PermissionDenied
from app.capture import camera as cam
from app.capture.camera import CameraRecorder
from app.capture.microphone import MicrophoneRecorder
from app.capture.sources import ArrayAudioSource, ArrayVideoSource, FileVideoSource, VideoFrame
from tests.app.media_sources import (
    dominant_frequency,
    second_brightness,
    tone,
    write_numbered_video,
)


def finished_clip(recorder: CameraRecorder, done: threading.Event, box: list):
    recorder.on_finished = lambda clip: (box.append(clip), done.set())
    recorder.start_recording()
    assert done.wait(20.0), "the recording never ended"
    return recorder.stop_recording()


class VideoAfterAudio(FileVideoSource):
    """A file video whose frames start once the microphone source has delivered everything,
    so the clip's audio span does not depend on thread scheduling."""

    def __init__(self, path, voice: ArrayAudioSource) -> None:
        super().__init__(path)
        self.voice = voice

    def read(self):
        assert self.voice.wait_done(10.0)
        return super().read()


@pytest.fixture(scope="module")
def five_second_video(tmp_path_factory):
    return write_numbered_video(tmp_path_factory.mktemp("video") / "five.avi", seconds=5, fps=10)


def test_a_clip_keeps_one_frame_per_second_of_the_video(five_second_video):
    recorder = CameraRecorder(lambda: FileVideoSource(five_second_video))
    box: list = []
    clip = finished_clip(recorder, threading.Event(), box)
    recorder.close()
    assert clip is box[0]
    assert clip.frame_times == pytest.approx([0, 1, 2, 3, 4])
    assert clip.duration_s == pytest.approx(5.0)
    assert not clip.truncated
    for second, frame in enumerate(clip.frames):
        assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - second_brightness(second)) < 8


def test_preview_frames_arrive_at_a_modest_rate(tmp_path):
    video = write_numbered_video(tmp_path / "fast.avi", seconds=3, fps=30)
    previews = []
    recorder = CameraRecorder(
        lambda: FileVideoSource(video), preview_fps=10, on_preview=previews.append
    )
    recorder.open()
    assert recorder.wait_ended(20.0)
    recorder.close()
    assert 29 <= len(previews) <= 31  # 3 s at 10 fps from a 30 fps stream
    gaps = np.diff([p.timestamp for p in previews])
    assert gaps.min() >= 0.1 - 1e-6


def test_preview_frames_are_downscaled_for_the_live_view():
    big = [np.zeros((720, 1280, 3), np.uint8)] * 3
    previews = []
    recorder = CameraRecorder(lambda: ArrayVideoSource(big, fps=30), on_preview=previews.append)
    recorder.open()
    assert recorder.wait_ended(10.0)
    recorder.close()
    assert previews[0].image.shape == (360, 640, 3)


def test_the_clip_stops_at_the_cap_with_a_countdown():
    frames = [np.full((24, 32, 3), i % 250, np.uint8) for i in range(70 * 2)]  # 70 s at 2 fps
    countdown = []
    recorder = CameraRecorder(
        lambda: ArrayVideoSource(frames, fps=2), max_seconds=60, on_countdown=countdown.append
    )
    clip = finished_clip(recorder, threading.Event(), [])
    recorder.close()
    assert clip.truncated
    assert len(clip.frames) == 60
    assert clip.frame_times == pytest.approx(list(range(60)))
    assert clip.duration_s == pytest.approx(60.0)
    assert [e.remaining_s for e in countdown] == list(range(10, 0, -1))
    assert clip.frames[59][0, 0, 0] == 118  # the frame at t = 59 s (index 118)


def test_the_clip_carries_the_microphones_audio_of_the_same_span(five_second_video):
    voice = ArrayAudioSource(tone(440, 8.0, 48_000), 48_000)
    microphone = MicrophoneRecorder(lambda: voice)
    recorder = CameraRecorder(
        lambda: VideoAfterAudio(five_second_video, voice), microphone=microphone
    )
    clip = finished_clip(recorder, threading.Event(), [])
    recorder.close()
    assert clip.audio is not None and clip.audio_error is None
    assert clip.audio.sample_rate == 16_000
    assert clip.audio.duration_s == pytest.approx(clip.duration_s, abs=0.01)
    assert dominant_frequency(clip.audio.waveform, 16_000) == pytest.approx(440, abs=2)


def test_a_clip_without_a_working_microphone_keeps_the_video_and_says_why(five_second_video):
    def no_mic():
        raise CaptureUnavailable("No microphone found.")

    recorder = CameraRecorder(
        lambda: FileVideoSource(five_second_video), microphone=MicrophoneRecorder(no_mic)
    )
    clip = finished_clip(recorder, threading.Event(), [])
    recorder.close()
    assert clip.audio is None
    assert clip.audio_error == "No microphone found."
    assert len(clip.frames) == 5


def test_a_saved_clip_is_an_mp4_with_video_and_audio_plus_a_wav(five_second_video, tmp_path):
    import av
    import soundfile

    voice = ArrayAudioSource(tone(440, 8.0, 44_100), 44_100)
    recorder = CameraRecorder(
        lambda: VideoAfterAudio(five_second_video, voice),
        microphone=MicrophoneRecorder(lambda: voice),
    )
    clip = finished_clip(recorder, threading.Event(), [])
    recorder.close()
    files = clip.save(tmp_path / "clip")
    with av.open(str(files.video)) as container:
        video_frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(files.video)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        assert container.streams.audio[0].sample_rate == 16_000
    assert len(video_frames) == len(clip.frames) == 5
    for second, frame in enumerate(video_frames):
        assert abs(float(frame.mean()) - second_brightness(second)) < 10
    assert len(audio) / 16_000 == pytest.approx(5.0, abs=0.1)
    info = soundfile.info(str(files.audio))
    assert (info.samplerate, info.channels) == (16_000, 1)
    assert info.frames / 16_000 == pytest.approx(5.0, abs=0.01)


class _FailingSource:
    name, fps = "flaky camera", 10.0

    def __init__(self):
        self.count = 0

    def open(self):
        pass

    def read(self):
        self.count += 1
        if self.count > 3:
            raise CaptureError("flaky camera stopped delivering frames.")
        return VideoFrame(np.zeros((8, 8, 3), np.uint8), self.count / self.fps)

    def close(self):
        pass


def test_a_failing_stream_is_reported_and_the_recorder_can_start_again():
    errors = []
    recorder = CameraRecorder(_FailingSource, on_error=errors.append)
    recorder.start_recording()
    assert recorder.wait_ended(10.0)
    assert "stopped delivering" in str(errors[0])
    with pytest.raises(CaptureError):
        recorder.stop_recording()
    recorder.close()
    recorder.open()  # a fresh source: usable again
    assert recorder.wait_ended(10.0)
    recorder.close()


class _ClosedCapture:
    """cv2.VideoCapture as it behaves with no camera or with access denied."""

    def __init__(self, *args):
        pass

    def isOpened(self):
        return False

    def release(self):
        pass


def test_a_camera_that_will_not_open_on_a_mac_says_how_to_grant_access(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", _ClosedCapture)
    recorder = CameraRecorder(device=0, platform="darwin")
    with pytest.raises(PermissionDenied, match=r"System Settings > Privacy & Security > Camera"):
        recorder.open()
    assert not recorder.is_open


def test_no_camera_is_reported_unavailable_with_the_reason(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", _ClosedCapture)
    status = cam.availability()
    assert not status and "No camera" in status.reason
    with pytest.raises(CaptureUnavailable, match="Could not open camera 1"):
        CameraRecorder(device=1, platform="linux").open()


def test_a_camera_that_will_not_open_leaves_the_microphone_off(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", _ClosedCapture)
    voice = ArrayAudioSource(tone(440, 5.0, 16_000), 16_000, speed=1.0)
    microphone = MicrophoneRecorder(lambda: voice)
    recorder = CameraRecorder(device=0, microphone=microphone, platform="darwin")
    with pytest.raises(PermissionDenied):
        recorder.start_recording()
    assert not microphone.is_recording and not recorder.is_recording
