"""One conversion between the Hugging Face and the OpenAI message shapes, both ways."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.errors import AppError, ErrorKind
from app.messages import (
    assistant_message,
    from_openai_messages,
    openai_tool_call,
    to_openai_messages,
    tool_message,
)
from mlx_model.events import ToolCall

CALL = ToolCall("add", {"a": 2, "b": 3}, id="call_1")


def no_media(*_args):
    raise AssertionError("no media expected")


def test_a_tool_round_trip_survives_both_conversions():
    hf = [
        {"role": "user", "content": "Add 2 and 3"},
        assistant_message("", calls=[CALL]),
        tool_message(CALL, {"sum": 5}),
        {"role": "assistant", "content": "5"},
    ]
    wire = to_openai_messages(hf)
    assert wire[1]["tool_calls"][0]["function"]["arguments"] == '{"a": 2, "b": 3}'
    assert wire[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"sum": 5}'}
    back = from_openai_messages(wire, image=no_media, audio=no_media)
    assert back[1]["tool_calls"] == assistant_message("", calls=[CALL])["tool_calls"]
    assert back[2]["name"] == "add" and back[2]["content"] == '{"sum": 5}'


def test_a_failed_tool_answers_with_its_error():
    assert tool_message(CALL, error="boom")["content"] == {"error": "boom"}


def test_streamed_tool_calls_carry_their_index():
    assert openai_tool_call(CALL, index=2)["index"] == 2
    assert "index" not in openai_tool_call(CALL)


def test_gemmas_native_tool_responses_become_tool_messages():
    hf = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c9", "function": {"name": "add", "arguments": {}}}],
            "tool_responses": [{"name": "add", "response": {"sum": 5}}],
        }
    ]
    wire = to_openai_messages(hf)
    assert wire[1] == {"role": "tool", "tool_call_id": "c9", "content": '{"sum": 5}'}


def test_images_and_audio_become_data_urls_and_wav(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path)
    content = [
        {"type": "image", "image": str(path)},
        {"type": "image", "image": np.zeros((4, 4, 3), dtype=np.uint8)},
        {"type": "audio", "audio": (np.zeros(1600, dtype=np.float32), 16000)},
    ]
    [user] = to_openai_messages([{"role": "user", "content": content}])
    assert [p["type"] for p in user["content"]] == ["image_url", "image_url", "input_audio"]
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert user["content"][2]["input_audio"]["format"] == "wav"


def test_a_video_cannot_go_to_an_openai_server():
    with pytest.raises(AppError) as caught:
        to_openai_messages([{"role": "user", "content": [{"type": "video", "video": "v.mp4"}]}])
    assert caught.value.kind is ErrorKind.UNSUPPORTED


def test_media_parts_are_decoded_by_the_callers_loaders():
    wire = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            ],
        }
    ]
    seen = []
    [user] = from_openai_messages(
        wire,
        image=lambda url, param: seen.append(param) or "IMAGE",
        audio=lambda part, param: seen.append(param) or "AUDIO",
    )
    assert user["content"] == [
        {"type": "image", "image": "IMAGE"},
        {"type": "audio", "audio": "AUDIO"},
    ]
    assert seen == ["messages[0].content[0]", "messages[0].content[1]"]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        (
            [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope"}],
            "messages[1].tool_call_id",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}],
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_a_malformed_message_names_the_field(messages, param):
    with pytest.raises(AppError) as caught:
        from_openai_messages(messages, image=no_media, audio=no_media)
    assert caught.value.param == param and caught.value.kind is ErrorKind.INVALID_REQUEST
