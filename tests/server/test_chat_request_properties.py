"""Property: any JSON body is a checked `ChatRequest` or an `APIError` (400/413), never a crash."""

from __future__ import annotations

import base64
import io

from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.media_budget import MediaBudget
from app.server.chat_request import ChatRequest, parse_chat_request
from app.server.config import ServerConfig
from app.server.errors import APIError


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()
CONFIG = ServerConfig(media_budget=MediaBudget(max_images=3), max_messages=8)

LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
BYTES = st.just(PNG) | st.binary(max_size=64) | st.just(PNG[:40])
DATA_URL = st.builds(
    lambda mime, data: f"data:{mime};base64," + base64.b64encode(data).decode(),
    st.sampled_from(["image/png", "image/jpeg", "text/plain"]),
    BYTES,
) | st.sampled_from(
    ["http://example.com/x.png", "/etc/passwd", "file:///etc/passwd", "data:,x", "ftp://x"]
)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=10) | LEAVES}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries({"url": DATA_URL}) | LEAVES,
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("input_audio"),
            "input_audio": st.fixed_dictionaries(
                {"data": st.builds(lambda b: base64.b64encode(b).decode(), BYTES) | LEAVES},
                optional={"format": st.sampled_from(["wav", "flac", "mp3", "exe"]) | LEAVES},
            )
            | LEAVES,
        }
    ),
    st.dictionaries(st.sampled_from(["type", "text", "image_url"]), VALUES, max_size=2),
)
CALL = st.fixed_dictionaries(
    {
        "id": st.text(max_size=4) | LEAVES,
        "function": st.fixed_dictionaries(
            {"name": st.text(max_size=5) | LEAVES},
            optional={"arguments": st.text(max_size=12) | VALUES},
        )
        | LEAVES,
    }
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(
            ["system", "developer", "user", "assistant", "tool", "function", "bot"]
        )
        | LEAVES
    },
    optional={
        "content": st.text(max_size=10) | st.lists(PART, max_size=4) | VALUES,
        "tool_calls": st.lists(CALL, max_size=2) | VALUES,
        "tool_call_id": st.text(max_size=4) | LEAVES,
        "name": st.text(max_size=4) | LEAVES,
    },
)
TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function") | LEAVES,
        "function": st.fixed_dictionaries(
            {"name": st.text(max_size=8) | LEAVES},
            optional={"parameters": VALUES, "description": LEAVES},
        )
        | LEAVES,
    }
)
BODIES = (
    st.fixed_dictionaries(
        {"model": st.just("m") | LEAVES, "messages": st.lists(MESSAGE, max_size=4) | VALUES},
        optional={
            name: strategy
            for name, strategy in {
                "stream": LEAVES,
                "stream_options": VALUES,
                "tools": st.lists(TOOL, max_size=2) | VALUES,
                "tool_choice": st.sampled_from(["auto", "none", "required"]) | VALUES,
                "temperature": LEAVES,
                "top_p": LEAVES,
                "top_k": LEAVES,
                "max_tokens": LEAVES,
                "seed": LEAVES,
                "stop": st.lists(st.text(max_size=3), max_size=3) | VALUES,
                "reasoning_effort": LEAVES,
                "chat_template_kwargs": VALUES,
                "enable_thinking": LEAVES,
                "n": LEAVES,
                "response_format": VALUES,
                "user": LEAVES,
                "surprise": LEAVES,
            }.items()
        },
    )
    | VALUES
)


GOOD_PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=10)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries(
                {"url": st.just("data:image/png;base64," + base64.b64encode(PNG).decode())}
            ),
        }
    ),
)
GOOD_MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.just("user"),
            "content": st.text(max_size=10) | st.lists(GOOD_PART, min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "assistant"]),
            "content": st.text(max_size=10),
        }
    ),
)
GOOD_BODIES = st.fixed_dictionaries(
    {"model": st.just("m"), "messages": st.lists(GOOD_MESSAGE, min_size=1, max_size=4)},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0.01, 1),
        "max_tokens": st.integers(1, 100),
        "seed": st.integers(0, 2**64 - 1),
        "stream": st.booleans(),
        "enable_thinking": st.booleans(),
        "stop": st.text(min_size=1, max_size=3),
    },
)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(GOOD_BODIES, BODIES))
def test_any_body_is_a_checked_request_or_an_api_error(body) -> None:
    try:
        request = parse_chat_request(body, CONFIG)
    except APIError as exc:
        assert 400 <= exc.status < 500 and exc.message
        event(f"refused {exc.status}")
        return
    event("accepted")
    assert isinstance(request, ChatRequest)
    assert request.options.max_tokens >= 1
    assert isinstance(request.enable_thinking, bool) and isinstance(request.stream, bool)
    for message in request.messages:
        assert message["role"] in ("system", "user", "assistant", "tool")
