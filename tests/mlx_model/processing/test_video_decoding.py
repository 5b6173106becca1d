"""Fast video decoding (restart at clean key packets) gives exactly the frames of a sequential decode."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mlx_model.processing import video
from mlx_model.processing.video import PacketIndex, load_video, plan_segments, sample_indices
from tests.mlx_model.processing.processing_media import textured_rgb


def encode_clip(
    path: Path,
    codec: str,
    options: dict[str, str],
    seconds: int = 6,
    fps: int = 20,
    size: tuple[int, int] = (96, 64),
) -> Path:
    """A moving textured pattern encoded with the given encoder options (GOP, B-frames, ...)."""
    width, height = size
    base = textured_rgb(height, width * 2, seed=3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options
        for i in range(seconds * fps):
            shift = (i * 5) % width
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(base[:, shift : shift + width]), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sequential_frames(path: Path) -> np.ndarray:
    """The sampled frames the plain way: decode every frame in order, keep the sampled indices."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        wanted = set(sample_indices(stream.frames, float(stream.average_rate)).tolist())
        frames = [
            frame.to_ndarray(format="rgb24")
            for i, frame in enumerate(container.decode(stream))
            if i in wanted
        ]
    return np.stack(frames)


def segments_of(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        wanted = sample_indices(stream.frames, float(stream.average_rate))
        index = video.index_packets(container, stream)
    return plan_segments(index, wanted, video._MIN_SKIPPED_PACKETS)


X264_SHORT_GOP_WITH_B_FRAMES = {"preset": "fast", "g": "8", "bf": "2", "sc_threshold": "0"}


def test_short_gop_h264_with_b_frames_skips_work_and_matches_sequential_decode(tmp_path):
    path = encode_clip(tmp_path / "short.mp4", "libx264", X264_SHORT_GOP_WITH_B_FRAMES)
    segments = segments_of(path)
    assert len(segments) > 1  # decoding restarts at IDR frames, skipping packets
    assert sum(b - a + 1 for a, b in segments) < 100  # sequential: frames 0..100
    np.testing.assert_array_equal(load_video(path).frames, sequential_frames(path))


def test_long_gop_h264_decodes_sequentially_with_the_same_frames(tmp_path):
    path = encode_clip(
        tmp_path / "long.mp4", "libx264", {"preset": "fast", "g": "250", "sc_threshold": "0"}
    )
    assert [a for a, _ in segments_of(path)] == [0]  # one key frame: nothing to skip
    np.testing.assert_array_equal(load_video(path).frames, sequential_frames(path))


def test_open_gop_key_frames_are_not_restart_points(tmp_path):
    options = {"preset": "fast", "x264-params": "keyint=8:min-keyint=8:open-gop=1:bframes=2"}
    path = encode_clip(tmp_path / "open.mp4", "libx264", options)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        index = video.index_packets(container, stream)
    assert sum(index.clean) == 1  # only the first (IDR) frame; later I-frames are open-GOP
    np.testing.assert_array_equal(load_video(path).frames, sequential_frames(path))


def test_short_gop_hevc_matches_sequential_decode(tmp_path):
    options = {
        "preset": "ultrafast",
        "x265-params": "keyint=8:min-keyint=8:open-gop=0:log-level=none",
    }
    path = encode_clip(tmp_path / "short.mp4", "libx265", options)
    assert len(segments_of(path)) > 1
    np.testing.assert_array_equal(load_video(path).frames, sequential_frames(path))


def test_short_gop_vp9_webm_matches_sequential_decode(tmp_path):
    options = {"g": "8", "deadline": "realtime", "cpu-used": "8"}
    path = encode_clip(tmp_path / "short.webm", "libvpx-vp9", options)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        wanted = sample_indices(120, float(stream.average_rate))
        segments = plan_segments(
            video.index_packets(container, stream), wanted, video._MIN_SKIPPED_PACKETS
        )
    assert len(segments) > 1
    clip = load_video(path)
    assert clip.total_frames == 120
    np.testing.assert_array_equal(clip.frames, sequential_frames_counted(path))


def sequential_frames_counted(path: Path) -> np.ndarray:
    """`sequential_frames` for containers without a frame count in the header (WebM)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    wanted = sample_indices(len(frames), rate)
    return np.stack([frames[i] for i in wanted])


def test_a_stream_that_breaks_its_index_is_decoded_sequentially(tmp_path, monkeypatch):
    path = encode_clip(tmp_path / "short.mp4", "libx264", X264_SHORT_GOP_WITH_B_FRAMES)
    real = video.index_packets

    def shifted(container, stream, limit=None):
        index = real(container, stream, limit)
        return PacketIndex([p + 1 for p in index.pts], index.clean, index.usable)

    monkeypatch.setattr(video, "index_packets", shifted)
    np.testing.assert_array_equal(load_video(path).frames, sequential_frames(path))


def plan(pts: list[int], clean: list[int], wanted: list[int], min_skip: int = 3):
    flags = [i in clean for i in range(len(pts))]
    return plan_segments(PacketIndex(pts, flags, True), np.asarray(wanted), min_skip)


def test_restarts_only_when_enough_packets_are_skipped():
    pts = list(range(40))
    assert plan(pts, [0, 10, 20, 30], [0, 12, 21, 35]) == [(0, 0), (10, 12), (20, 21), (30, 35)]
    assert plan(pts, [0, 10, 20, 30], [0, 12, 21, 35], min_skip=8) == [(0, 0), (10, 21), (30, 35)]


def test_a_leading_picture_is_decoded_from_the_previous_start():
    # decode order: key(0) 1 2 key(3, shown at 5) leading(4, shown at 3) 5
    pts = [0, 1, 2, 5, 3, 6]
    assert plan(pts, [0, 3], [3], min_skip=0) == [(0, 4)]  # display 3 = decode 4, leads key 3


def test_no_plan_when_a_sampled_frame_lies_beyond_the_packets():
    assert plan(list(range(5)), [0], [0, 6]) is None


def test_no_plan_for_an_unusable_index():
    index = PacketIndex([0, 1, 2], [True, True, True], usable=False)
    assert plan_segments(index, np.asarray([0, 2]), 0) is None


@pytest.mark.parametrize(
    "header,expected",
    [(0b10000000, True), (0b10000100, False), (0b10001000, False), (0b10110000, True)],
)
def test_vp9_key_frame_header_bits(header, expected):
    # marker 10, profile bits, show_existing_frame, frame_type (0 = key); profile 3 has a spare bit
    assert video._vp9_key(bytes([header, 0])) is expected
