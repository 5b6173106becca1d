"""The server spoken to with the official `openai` package, on 127.0.0.1, with the tiny checkpoint."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import openai
import pytest
import soundfile
from PIL import Image

from app.engine_service import EngineService
from app.server.config import ServerConfig
from app.server.runner import ServerThread
from tests.doubles import script_turns

from .conftest import API_KEY, MAX_BODY


def png_data_url(width: int = 64, height: int = 48) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 10)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def test_lists_the_loaded_model_by_its_folder_name(client, engine_service):
    models = client.models.list().data
    assert [m.id for m in models] == [engine_service.model_path.rstrip("/").split("/")[-1]]
    assert client.models.retrieve(models[0].id).id == models[0].id


def test_streamed_chat_arrives_in_chunks_with_usage(client, model_id, engine_service):
    script_turns(engine_service, ["The quick brown fox"])
    stream = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=30,
    )
    chunks = list(stream)
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(deltas) == "The quick brown fox"
    assert len(deltas) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage.completion_tokens >= len(deltas)
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_non_streamed_chat_with_an_image_counts_its_soft_tokens(client, model_id, engine_service):
    question = {"type": "text", "text": "What is in this image?"}
    script_turns(engine_service, ["Red", "Red"])
    plain = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": [question]}], max_tokens=10
    )
    with_image = client.chat.completions.create(
        model=model_id,
        messages=[
            {
                "role": "user",
                "content": [question, {"type": "image_url", "image_url": {"url": png_data_url()}}],
            }
        ],
        max_tokens=10,
    )
    assert with_image.choices[0].message.content == "Red"
    assert with_image.choices[0].finish_reason == "stop"
    assert with_image.usage.prompt_tokens > plain.usage.prompt_tokens + 10


def test_image_path_inside_an_allowed_folder_is_read(client, model_id, allowed_folder):
    path = allowed_folder / "red.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(path)
    response = client.chat.completions.create(
        model=model_id,
        messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": str(path)}}]}
        ],
        max_tokens=2,
    )
    assert response.usage.prompt_tokens > 10


def test_image_path_outside_the_allowed_folders_is_refused(client, model_id, tmp_path):
    path = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=model_id,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"file://{path}"}}],
                }
            ],
        )
    assert caught.value.body["code"] == "path_not_allowed"


def test_input_audio_reaches_the_model(client, model_id):
    buffer = io.BytesIO()
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    soundfile.write(buffer, tone, 16000, format="WAV")
    audio = {"data": base64.b64encode(buffer.getvalue()).decode(), "format": "wav"}
    plain = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Transcribe the audio clip."}],
        max_tokens=1,
    )
    response = client.chat.completions.create(
        model=model_id,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Transcribe the audio clip."},
                    {"type": "input_audio", "input_audio": audio},
                ],
            }
        ],
        max_tokens=1,
    )
    assert response.usage.prompt_tokens > plain.usage.prompt_tokens + 5


def test_tool_call_round_trip(client, model_id, engine_service, monkeypatch):
    seen: list[list[dict]] = []
    generate = engine_service.generate

    def recording_generate(messages, **kwargs):
        seen.append(list(messages))
        return generate(messages, **kwargs)

    monkeypatch.setattr(engine_service, "generate", recording_generate)
    script_turns(engine_service, [("tool", "add", {"a": 2, "b": 3}), "The sum is 5"])
    messages = [{"role": "user", "content": "Add 2 and 3"}]
    first = client.chat.completions.create(
        model=model_id, messages=messages, tools=[ADD_TOOL], max_tokens=40
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 2, "b": 3}
    assert call.id

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"result": 5})},
    ]
    second = client.chat.completions.create(
        model=model_id, messages=messages, tools=[ADD_TOOL], max_tokens=40
    )
    assert second.choices[0].message.content == "The sum is 5"
    assert second.choices[0].finish_reason == "stop"
    tool_message = seen[-1][-1]
    assert tool_message == {
        "role": "tool",
        "name": "add",
        "tool_call_id": call.id,
        "content": '{"result": 5}',
    }
    assert seen[-1][-2]["tool_calls"][0]["function"]["arguments"] == {"a": 2, "b": 3}


def test_streamed_tool_call_arrives_as_tool_call_deltas(client, model_id, engine_service):
    script_turns(engine_service, [("tool", "add", {"a": 1, "b": 1})])
    chunks = list(
        client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": "1+1"}],
            tools=[ADD_TOOL],
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [
        ("add", {"a": 1, "b": 1})
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_thinking_comes_back_as_reasoning_content(client, model_id, engine_service):
    script_turns(engine_service, ["<|channel>thought\nLet me check<channel|>Yes"])
    response = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Is it?"}],
        reasoning_effort="high",
        max_tokens=40,
    )
    message = response.choices[0].message
    assert message.content == "Yes"
    assert "Let me check" in message.model_extra["reasoning_content"]


def test_same_seed_gives_the_same_sampled_text(client, model_id):
    def ask() -> str:
        response = client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": "Say something"}],
            temperature=1.0,
            top_p=0.95,
            seed=1234,
            max_tokens=12,
        )
        return response.choices[0].message.content

    assert ask() == ask()


def test_stop_string_ends_the_answer_before_it(client, model_id, engine_service):
    script_turns(engine_service, ["Hello world and more"])
    response = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Hi"}], stop=[" and"], max_tokens=30
    )
    assert response.choices[0].message.content == "Hello world"
    assert response.choices[0].finish_reason == "stop"


def test_max_tokens_limits_the_answer(client, model_id, engine_service):
    script_turns(engine_service, [("forever", "hello")])
    response = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=7
    )
    assert response.usage.completion_tokens == 7
    assert response.choices[0].finish_reason == "length"


def test_bad_request_is_a_400_in_openai_shape(client, model_id):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "Hi"}], temperature=7.5
        )
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] == "temperature"


def test_wrong_api_key_is_a_401(server, model_id):
    wrong = openai.OpenAI(base_url=server.url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["code"] == "model_not_found"


def test_oversize_body_is_a_413(client, model_id):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "x" * (2 * MAX_BODY)}]
        )
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "request_too_large"


def test_client_disconnect_mid_stream_cancels_the_generation(
    client, model_id, engine_service, server, finished_events
):
    script_turns(engine_service, [("forever", "hello")])
    stream = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "Go on forever"}],
        stream=True,
        max_tokens=3000,
    )
    received = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received += 1
        if received == 3:
            break
    stream.close()
    [finished] = finished_events.wait(1, timeout=60)
    assert finished.stats.stop_reason == "cancelled"
    assert finished.stats.generated_tokens < 3000
    deadline = time.monotonic() + 10
    while server.state.queue.stats().running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.state.queue.stats().running == 0


def test_a_full_queue_answers_429_and_recovers(engine_service, finished_events):
    config = ServerConfig(port=0, max_waiting=0)
    with ServerThread(engine_service, config) as busy_server:
        client = openai.OpenAI(
            base_url=busy_server.url, api_key="unused", max_retries=0, timeout=60
        )
        model = client.models.list().data[0].id
        script_turns(engine_service, [("forever", "hello"), "Done"])
        started = threading.Event()

        def long_request() -> None:
            stream = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Hi"}],
                stream=True,
                max_tokens=3000,
            )
            for _chunk in stream:
                started.set()
                if finished_events.events:
                    break
            stream.close()

        worker = threading.Thread(target=long_request)
        worker.start()
        assert started.wait(60)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}]
            )
        assert caught.value.body["code"] == "queue_full"
        engine_service.cancel()
        worker.join(60)
        finished_events.wait(1)
        deadline = time.monotonic() + 10
        while busy_server.state.queue.stats().running and time.monotonic() < deadline:
            time.sleep(0.05)
        again = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=5
        )
        assert again.choices[0].message.content == "Done"
        assert busy_server.state.queue.stats().rejected == 1


def test_health_reports_the_queue(server):
    import httpx2

    body = httpx2.get(server.url.removesuffix("/v1") + "/health").json()
    assert body["status"] == "ok"
    assert body["queue"]["running"] == 0
    assert body["queue"]["max_waiting"] == 2


def test_service_without_a_model_answers_503(tiny_checkpoint):
    service = EngineService()
    try:
        with ServerThread(service, ServerConfig(port=0, model_id="gemma")) as empty:
            client = openai.OpenAI(base_url=empty.url, api_key="unused", max_retries=0)
            assert client.models.list().data == []
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(
                    model="gemma", messages=[{"role": "user", "content": "Hi"}]
                )
    finally:
        service.shutdown()


def test_unknown_route_is_a_404_in_openai_shape(server):
    import httpx2

    response = httpx2.post(
        server.url + "/fine_tuning/jobs", headers={"Authorization": f"Bearer {API_KEY}"}, json={}
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_a_foreign_host_header_is_refused_on_loopback(server):
    import httpx2

    response = httpx2.get(
        server.url + "/models",
        headers={"Host": "evil.example:80", "Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 403
