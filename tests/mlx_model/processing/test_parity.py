"""Parity with transformers' `Gemma4UnifiedProcessor` (same checkpoint, same template, same media).

Ids, token types and positions must match exactly. Pixels may differ by resampler rounding:
we resize with Pillow's antialiased bicubic, the reference with torchvision's on uint8; both
use the a = -0.5 kernel and round to uint8, so a few values differ by 1–2 levels out of 255.
Audio arrays match exactly (same soundfile decode + soxr HQ resampling).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageOps

from mlx_model.processing import Processor
from mlx_model.processing.video import FrameSampling, load_video
from tests.mlx_model.processing.processing_media import (
    jpeg_with_orientation,
    save_image,
    textured_rgb,
    tone,
    write_video,
)

PIXEL_ATOL = 2 / 255 + 1e-6  # measured max |Δ| is 2/255
PIXEL_MAX_DIFFERENT = 0.01  # measured: under 0.7 % of values differ at all


def reference_inputs(hf_processor, messages, **processor_kwargs) -> dict[str, np.ndarray]:
    out = hf_processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="np",
        processor_kwargs=processor_kwargs,
    )
    return {k: np.asarray(v) for k, v in out.items()}


def assert_ids_match(ours: dict, ref: dict) -> None:
    np.testing.assert_array_equal(ours["input_ids"], ref["input_ids"])
    np.testing.assert_array_equal(ours["mm_token_type_ids"], ref["mm_token_type_ids"])


def assert_pixels_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape and ours.dtype == np.float32
    diff = np.abs(ours - ref)
    assert diff.max() <= PIXEL_ATOL
    assert (diff > 1e-6).mean() <= PIXEL_MAX_DIFFERENT


def image_message(source, text: str = "What is in this image?") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": source}, {"type": "text", "text": text}],
        }
    ]


def _photo(tmp: Path, h: int, w: int) -> tuple[str, Image.Image]:
    path = save_image(tmp / f"photo_{h}x{w}.png", textured_rgb(h, w))
    return str(path), Image.open(path)


def _exif_portrait(tmp: Path) -> tuple[str, Image.Image]:
    # A phone stores a portrait shot as landscape pixels plus "rotate 90° CW" (orientation 6).
    path = jpeg_with_orientation(tmp / "portrait.jpg", textured_rgb(300, 400), orientation=6)
    return str(path), ImageOps.exif_transpose(Image.open(path))


def _rgba_png(tmp: Path) -> tuple[str, Image.Image]:
    rgba = np.dstack(
        [textured_rgb(120, 90), np.linspace(0, 255, 120 * 90).reshape(120, 90).astype(np.uint8)]
    )
    path = save_image(tmp / "alpha.png", rgba)
    return str(path), Image.open(path)


def _cmyk_jpeg(tmp: Path) -> tuple[str, Image.Image]:
    path = tmp / "print.jpg"
    Image.fromarray(textured_rgb(200, 150)).convert("CMYK").save(path, format="JPEG", quality=95)
    return str(path), Image.open(path)


def _grayscale(tmp: Path) -> tuple[str, Image.Image]:
    path = save_image(tmp / "gray.png", textured_rgb(180, 240)[..., 0])
    return str(path), Image.open(path)


IMAGE_CASES = {
    "tiny_8x8": lambda tmp: _photo(tmp, 8, 8),
    "panorama_4000x300": lambda tmp: _photo(tmp, 300, 4000),
    "landscape_480x640": lambda tmp: _photo(tmp, 480, 640),
    "portrait_exif_rotated": _exif_portrait,
    "rgba_png": _rgba_png,
    "cmyk_jpeg": _cmyk_jpeg,
    "grayscale": _grayscale,
}


@pytest.mark.parametrize("budget", [70, 1120])
@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_image_inputs_match_reference(processor, hf_processor, tmp_path, case, budget):
    path, reference_image = IMAGE_CASES[case](tmp_path)
    ours = processor.apply_chat_template(image_message(path), image_budget=budget)
    ref = reference_inputs(hf_processor, image_message(reference_image), max_soft_tokens=budget)
    assert_ids_match(ours, ref)
    np.testing.assert_array_equal(ours["image_position_ids"], ref["image_position_ids"])
    assert_pixels_close(ours["pixel_values"], ref["pixel_values"])


def test_exif_orientation_is_applied_before_resizing(processor, tmp_path):
    path, _ = _exif_portrait(tmp_path)
    positions = processor.apply_chat_template(image_message(path), image_budget=280)[
        "image_position_ids"
    ][0]
    valid = positions[positions[:, 0] >= 0]
    columns, rows = valid[:, 0].max() + 1, valid[:, 1].max() + 1
    assert rows > columns  # stored 400 wide x 300 high, shown upright as portrait


def test_two_images_in_one_message_match_reference(processor, hf_processor, tmp_path):
    first, first_ref = _photo(tmp_path, 64, 200)
    second, second_ref = _grayscale(tmp_path)

    def message(a, b):
        return [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": a},
                    {"type": "image", "image": b},
                    {"type": "text", "text": "Compare them."},
                ],
            }
        ]

    ours = processor.apply_chat_template(message(first, second), image_budget=140)
    ref = reference_inputs(hf_processor, message(first_ref, second_ref), max_soft_tokens=140)
    assert_ids_match(ours, ref)
    np.testing.assert_array_equal(ours["image_position_ids"], ref["image_position_ids"])
    assert_pixels_close(ours["pixel_values"], ref["pixel_values"])


@pytest.mark.parametrize("seconds", [0.2, 7.3, 30.0])
def test_audio_inputs_match_reference(processor, hf_processor, tmp_path, seconds):
    # 44.1 kHz stereo: exercises the downmix and the resampler, not just the framing.
    path = tmp_path / f"clip_{seconds}.wav"
    sf.write(path, tone(seconds, 44_100, channels=2), 44_100)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Transcribe the audio clip."},
                {"type": "audio", "audio": str(path)},
            ],
        }
    ]
    ours = processor.apply_chat_template(messages)
    ref = reference_inputs(hf_processor, messages)
    assert_ids_match(ours, ref)
    np.testing.assert_array_equal(ours["input_features_mask"], ref["input_features_mask"])
    np.testing.assert_array_equal(ours["input_features"], ref["input_features"])
    assert ours["input_features"].shape[1] == int(np.ceil(seconds * 16_000 / 640))


def _video_messages(path) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": str(path)},
                {"type": "text", "text": "What happens in this video?"},
            ],
        }
    ]


@pytest.mark.parametrize("seconds", [12, 60])
def test_a_video_is_sampled_as_transformers_samples_it_with_the_checkpoint_config(
    processor, hf_processor, tmp_path, seconds
):
    """transformers' video processor picks the frames itself from the whole clip, with the
    checkpoint's processor config (32 frames spread uniformly); ours picks the same ones."""
    from transformers.video_utils import VideoMetadata

    fps = 10 if seconds <= 12 else 2
    path = write_video(tmp_path / "clip.mp4", seconds=seconds, fps=fps, size=(96, 64))
    every_frame = load_video(path, sampling=FrameSampling(fps=fps))
    assert len(every_frame.frames) == seconds * fps
    metadata = VideoMetadata(total_num_frames=seconds * fps, fps=float(fps), duration=seconds)
    messages = _video_messages(path)
    ours = processor.apply_chat_template(messages, return_prompt=True)
    ref = hf_processor(
        text=processor.render(messages),
        videos=[every_frame.frames],
        video_metadata=[metadata],
        return_tensors="np",
    )
    assert processor.config.video_sampling == FrameSampling(num_frames=32)
    assert ours["num_frames_per_video"].tolist() == [32] == list(ref["num_frames_per_video"])
    assert_ids_match(ours, ref)
    np.testing.assert_array_equal(ours["video_position_ids"], ref["video_position_ids"])
    assert_pixels_close(ours["pixel_values_videos"], ref["pixel_values_videos"])
    last = 31 * (seconds * fps) // 32 / fps  # the last sampled frame's time, in seconds
    assert f"{int(last // 60):02d}:{int(last % 60):02d} <|image>" in ours["prompt"]


def test_a_clip_with_fewer_frames_than_the_config_asks_gives_every_frame(processor, tmp_path):
    """transformers raises here (32 frames from a 2 s, 10 fps clip); we take all 20."""
    path = write_video(tmp_path / "short.mp4", seconds=2, fps=10, size=(96, 64))
    ours = processor.apply_chat_template(_video_messages(path))
    assert ours["num_frames_per_video"].tolist() == [20]


def test_a_config_with_fps_instead_of_num_frames_samples_per_second(tiny_checkpoint, tmp_path):
    import json
    import shutil

    for item in tiny_checkpoint.iterdir():
        if item.suffix != ".safetensors":
            shutil.copy(item, tmp_path / item.name)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    config["video_processor"].update(num_frames=None, fps=2)
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    processor = Processor.from_pretrained(tmp_path)
    assert processor.config.video_sampling == FrameSampling(fps=2.0)
    path = write_video(tmp_path / "clip.mp4", seconds=6, fps=10, size=(96, 64))
    assert processor.apply_chat_template(_video_messages(path))[
        "num_frames_per_video"
    ].tolist() == [12]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    },
]


def tool_conversation() -> list[dict]:
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather in Paris? And what is 6*7?"},
        {
            "role": "assistant",
            "reasoning_content": "I need the weather tool and the calculator.",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": {"city": "Paris", "units": "celsius"},
                    },
                },
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": {"expression": "6*7"}},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_0",
            "content": '{"temperature": 21, "sky": "sunny"}',
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]


@pytest.mark.parametrize("thinking", [False, True])
def test_tool_conversation_matches_reference(processor, hf_processor, thinking):
    messages = tool_conversation()
    ours = processor.apply_chat_template(
        messages, enable_thinking=thinking, tools=TOOLS, return_prompt=True
    )
    ref = hf_processor.apply_chat_template(
        messages,
        tools=TOOLS,
        add_generation_prompt=True,
        enable_thinking=thinking,
        tokenize=True,
        return_dict=True,
        return_tensors="np",
    )
    assert_ids_match(ours, ref)
    prompt = ours["prompt"]
    assert prompt.count("<|tool_call>call:") == 2 and prompt.count("<|tool_response>response:") == 2
    assert ("<|think|>" in prompt) is thinking
