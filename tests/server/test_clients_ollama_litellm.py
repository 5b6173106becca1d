"""Ollama's API through the official `ollama` client, and LiteLLM's `responses` (our
`/v1/responses`) and `ollama_chat/` provider (our `/api/chat`), on 127.0.0.1 with the tiny
model. The packages are the `clients` extra (`.ci/run` installs it).

LiteLLM is imported with its bundled model-cost map (`LITELLM_LOCAL_MODEL_COST_MAP`), so it
makes no network request of its own.
"""

from __future__ import annotations

import base64
import io
import json
import os

import pytest
from PIL import Image

from tests.doubles import script_turns

from .conftest import API_KEY

# LiteLLM's own types trip pydantic's ReadOnly warning on import; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item.*ReadOnly:UserWarning", "ignore:Items.*ReadOnly:UserWarning"
)

ollama = pytest.importorskip(
    "ollama", reason="the clients extra (pip install '.[clients]') is not installed"
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def ollama_client(server) -> ollama.Client:
    return ollama.Client(
        host=server.url.removesuffix("/v1"), headers={"Authorization": f"Bearer {API_KEY}"}
    )


@pytest.fixture(scope="module")
def litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    module = pytest.importorskip(
        "litellm", reason="the clients extra (pip install '.[clients]') is not installed"
    )
    module.telemetry = False
    return module


def test_ollama_list_show_ps_and_version(ollama_client, model_id):
    [listed] = ollama_client.list().models
    assert listed.model == model_id and listed.size > 0
    assert listed.details.family == "gemma4"
    shown = ollama_client.show(model_id)
    assert "completion" in shown.capabilities and "tools" in shown.capabilities
    [running] = ollama_client.ps().models
    assert running.model == model_id and running.context_length > 0
    assert ollama_client._request_raw("GET", "/api/version").json()["version"]


def test_ollama_chat_streamed_and_whole(ollama_client, model_id, engine_service):
    script_turns(engine_service, ["The quick brown fox", "Jumps"])
    parts = list(
        ollama_client.chat(
            model=model_id, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert "".join(p.message.content for p in parts) == "The quick brown fox"
    assert parts[-1].done and parts[-1].done_reason == "stop"
    reply = ollama_client.chat(
        model=f"{model_id}:latest",
        messages=[{"role": "user", "content": "Again"}],
        options={"num_predict": 20, "temperature": 0.0},
    )
    assert reply.message.content == "Jumps" and reply.model == model_id


def test_ollama_chat_tool_call_round_trip(ollama_client, model_id, engine_service):
    script_turns(engine_service, [("tool", "get_weather", {"city": "Oslo"}), "Sunny"])
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = ollama_client.chat(model=model_id, messages=messages, tools=[WEATHER])
    [call] = first.message.tool_calls
    assert (call.function.name, dict(call.function.arguments)) == ("get_weather", {"city": "Oslo"})
    messages += [first.message, {"role": "tool", "content": "sunny", "tool_name": "get_weather"}]
    second = ollama_client.chat(model=model_id, messages=messages, tools=[WEATHER])
    assert second.message.content == "Sunny"


def test_ollama_chat_with_an_image_and_a_schema_format(ollama_client, model_id):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 128, 255)).save(buffer, format="PNG")
    schema = {
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "blue"]},
            "n": {"type": "integer", "minimum": 0, "maximum": 9},
        },
        "required": ["color", "n"],
    }
    reply = ollama_client.chat(
        model=model_id,
        messages=[
            {
                "role": "user",
                "content": "Which color?",
                "images": [base64.b64encode(buffer.getvalue()).decode()],
            }
        ],
        format=schema,
        options={"num_predict": 80},
    )
    answer = json.loads(reply.message.content)
    assert answer["color"] in ("red", "blue") and 0 <= answer["n"] <= 9
    assert reply.prompt_eval_count > 40  # the image's soft tokens are in the prompt


def test_ollama_generate(ollama_client, model_id, engine_service):
    script_turns(engine_service, ["Forty-two"])
    reply = ollama_client.generate(model=model_id, prompt="The answer?", system="Be brief.")
    assert reply.response == "Forty-two" and reply.done


def test_litellm_responses(litellm, server, model_id, engine_service):
    script_turns(engine_service, ["Hello from Gemma"])
    response = litellm.responses(
        model=f"openai/{model_id}",
        input="Say hello",
        api_base=server.url,
        api_key=API_KEY,
        max_output_tokens=30,
    )
    assert response.output[-1].content[0].text == "Hello from Gemma"


def test_litellm_ollama_chat(litellm, server, model_id, engine_service):
    script_turns(engine_service, ["Hi there"])
    response = litellm.completion(
        model=f"ollama_chat/{model_id}",
        messages=[{"role": "user", "content": "Hello"}],
        api_base=server.url.removesuffix("/v1"),
        api_key=API_KEY,
        max_tokens=30,
    )
    assert response.choices[0].message.content == "Hi there"
