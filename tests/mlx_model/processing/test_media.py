"""Decoding and shaping of images, audio and video (formats, limits, policies)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mlx_model.processing import MediaTooLongError, resample
from mlx_model.processing.audio import frame_audio, load_audio
from mlx_model.processing.image import load_image, preprocess_image
from mlx_model.processing.video import extract_audio_track, load_video, sample_indices
from tests.mlx_model.processing.processing_media import (
    encode_audio,
    textured_rgb,
    tone,
    write_video,
)

# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,suffix",
    [
        ("JPEG", "jpg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("TIFF", "tif"),
        ("BMP", "bmp"),
        ("HEIF", "heic"),
    ],
)
def test_common_image_formats_decode_to_rgb(tmp_path, fmt, suffix):
    picture = textured_rgb(64, 96)
    path = tmp_path / f"picture.{suffix}"
    Image.fromarray(picture).save(
        path, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP", "HEIF") else {})
    )
    rgb = load_image(path)
    assert rgb.shape == (64, 96, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - picture).mean() < 12  # lossy formats stay close


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (10, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert load_image(path).mean() < 50


def test_transparency_is_composited_onto_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent black
    path = tmp_path / "clear.png"
    Image.fromarray(rgba).save(path)
    assert (load_image(path) == 255).all()


def test_image_tokens_follow_the_budget_and_patch_layout():
    picture = textured_rgb(96, 144)  # upscaled to the largest 48-px grid within 70 patches
    features = preprocess_image(picture, 70)
    n = features.num_soft_tokens
    assert n <= 70 and features.pixel_values.shape == (70, 6912)
    assert (features.position_ids[n:] == -1).all() and (features.pixel_values[n:] == 0).all()
    # Position ids are (column, row) in raster order.
    columns = features.position_ids[:n, 0].max() + 1
    assert features.position_ids[1].tolist() == [1, 0]
    assert features.position_ids[columns].tolist() == [0, 1]


def test_patch_is_a_48px_block_flattened_row_major_with_channels_last():
    picture = textured_rgb(96, 96)  # patchified as is: a 2 x 2 grid of 48-px patches
    from mlx_model.processing.image import patchify

    features = patchify(picture, 70)
    block = (
        picture[48:96, 0:48].astype(np.float32) / 255
    )  # second row, first column -> patch index 2
    np.testing.assert_allclose(features.pixel_values[2], block.reshape(-1), rtol=0, atol=1e-7)


def test_per_message_image_budget_overrides_the_default(processor):
    picture = textured_rgb(200, 200)
    content = [
        {"type": "image", "image": picture, "max_soft_tokens": 1120},
        {"type": "image", "image": picture},
    ]
    out = processor.apply_chat_template([{"role": "user", "content": content}], image_budget=70)
    counts = (out["image_position_ids"][..., 0] >= 0).sum(axis=1)
    assert counts[0] > 1000 and counts[1] <= 70
    assert out["pixel_values"].shape[1] == 1120  # padded to the largest budget in the call


def test_unsupported_budget_is_refused(processor):
    with pytest.raises(ValueError):
        processor.apply_chat_template([{"role": "user", "content": "hi"}], image_budget=100)


# -- audio -------------------------------------------------------------------------------


def test_resample_is_anti_aliased():
    rate = 48_000
    t = np.arange(rate) / rate
    above_nyquist = np.sin(2 * np.pi * 12_000 * t).astype(
        np.float32
    )  # 12 kHz > 8 kHz (new Nyquist)
    in_band = np.sin(2 * np.pi * 1_000 * t).astype(np.float32)
    folded = resample(above_nyquist, rate, 16_000)[200:-200]  # skip the filter edges
    assert (
        np.sqrt(np.mean(folded**2)) < 1e-3
    )  # naive decimation would alias it to 4 kHz at RMS 0.71
    kept = resample(in_band, rate, 16_000)
    assert abs(np.sqrt(np.mean(kept[200:-200] ** 2)) - np.sqrt(0.5)) < 0.01
    assert kept.shape == (16_000,)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100])
def test_resample_length_is_ceil_of_the_ratio(rate):
    assert resample(np.zeros(12_345, np.float32), rate, 16_000).shape[0] == int(
        np.ceil(12_345 * 16_000 / rate)
    )


def test_microphone_pcm_with_its_rate_is_downmixed_and_resampled():
    pcm = (tone(1.0, 48_000, channels=2) * 32767).astype(np.int16)  # [n, 2] like sounddevice
    [clip] = load_audio((pcm, 48_000))
    assert clip.shape == (16_000,) and clip.dtype == np.float32 and np.abs(clip).max() <= 1.0


@pytest.mark.parametrize(
    "suffix,codec,fmt",
    [
        ("flac", None, "FLAC"),
        ("ogg", None, "OGG"),
        ("mp3", None, "MP3"),
        ("m4a", "aac", None),
        ("aac", "aac", "adts"),
    ],
)
def test_audio_formats_decode(tmp_path, suffix, codec, fmt):
    samples = tone(2.0, 44_100)
    path = tmp_path / f"clip.{suffix}"
    if codec is None:
        sf.write(path, samples, 44_100, format=fmt)
    else:
        encode_audio(path, samples, 44_100, codec, container_format=fmt)
    [clip] = load_audio(str(path))
    assert abs(clip.shape[0] / 16_000 - 2.0) < 0.1
    assert 0.2 < np.sqrt(np.mean(clip**2)) < 0.5


def test_frames_are_640_samples_with_the_last_zero_padded():
    features = frame_audio(np.ones(1_000, np.float32))
    assert features.input_features.shape == (2, 640) and features.mask.all()
    assert (features.input_features[1, 360:] == 0).all()


def test_audio_over_30_seconds_is_refused_by_default_with_the_choices(tmp_path):
    path = tmp_path / "talk.wav"
    sf.write(path, tone(31.0, 16_000), 16_000)
    with pytest.raises(MediaTooLongError) as info:
        load_audio(str(path))
    message = str(info.value)
    assert "talk.wav" in message and "30 s" in message and "Trim" in message and "split" in message


def test_trim_policy_keeps_exactly_the_first_30_seconds(tmp_path):
    path = tmp_path / "talk.wav"
    sf.write(path, tone(45.0, 16_000), 16_000)
    [clip] = load_audio(str(path), policy="trim")
    assert clip.shape == (480_000,)


def test_split_policy_yields_consecutive_clips_covering_everything(processor, tmp_path):
    path = tmp_path / "talk.wav"
    sf.write(path, tone(70.0, 16_000), 16_000)
    clips = load_audio(str(path), policy="split")
    assert [len(c) for c in clips] == [480_000, 480_000, 160_000]
    out = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "audio", "audio": str(path)}]}],
        long_audio="split",
        return_prompt=True,
    )
    assert out["input_features"].shape == (3, 750, 640)
    assert out["input_features_mask"].sum(axis=1).tolist() == [750, 750, 250]
    assert out["prompt"].count("<|audio>") == 3


# -- video -------------------------------------------------------------------------------


def test_one_frame_per_second_with_reference_indices():
    assert sample_indices(120, 10.0).tolist() == list(range(0, 120, 10))
    assert sample_indices(5, 30.0).tolist() == [0]  # shorter than a second: one frame


def test_video_frames_and_timestamps(tmp_path):
    clip = load_video(write_video(tmp_path / "c.mp4", seconds=4, fps=25, size=(96, 64)))
    assert clip.frames.shape == (4, 64, 96, 3)
    assert clip.timestamps == [0.0, 1.0, 2.0, 3.0]


def test_webm_decodes(tmp_path):
    clip = load_video(
        write_video(tmp_path / "c.webm", seconds=3, fps=10, codec="libvpx-vp9", size=(96, 64))
    )
    assert clip.frames.shape[0] == 3


def test_video_over_60_seconds_is_refused_or_trimmed(tmp_path):
    path = write_video(tmp_path / "long.mp4", seconds=62, fps=2, size=(64, 48))
    with pytest.raises(MediaTooLongError, match="long.mp4"):
        load_video(path)
    clip = load_video(path, policy="trim")
    assert clip.frames.shape[0] == 60 and clip.timestamps[-1] == 59.0


def test_sound_track_of_a_webcam_clip_becomes_audio_input(processor, tmp_path):
    path = write_video(tmp_path / "cam.mp4", seconds=3, fps=10, size=(96, 64), audio_rate=16_000)
    [track] = extract_audio_track(path)
    assert abs(track.shape[0] / 16_000 - 3.0) < 0.1
    content = [
        {"type": "video", "video": str(path), "include_audio": True},
        {"type": "text", "text": "What is said?"},
    ]
    out = processor.apply_chat_template([{"role": "user", "content": content}], return_prompt=True)
    # 30 frames, fewer than the 32 the checkpoint's config asks for: every frame
    assert out["num_frames_per_video"].tolist() == [30] and out["input_features"].shape[0] == 1
    assert out["prompt"].index("<|video|>") < out["prompt"].index("<|audio|>")


def test_silent_video_has_no_sound_track(tmp_path):
    assert (
        extract_audio_track(write_video(tmp_path / "mute.mp4", seconds=1, fps=5, size=(64, 48)))
        is None
    )
