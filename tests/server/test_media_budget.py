"""Bounded memory per request: media measured from their headers against the budget before
anything is decoded, a full queue refusing before the body is read, and decoding only when
a request's turn comes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import threading
import time
import zlib

import numpy as np
import openai
import pytest
import soundfile
from PIL import Image

from app.engine_service import EngineService
from app.media_budget import MediaBudget
from app.server import app as server_app
from app.server.app import create_app
from app.server.config import ServerConfig
from app.server.runner import ServerThread
from tests.doubles import script_turns


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` and whose pixel data is garbage: it can be
    measured but never decoded (a server that tried would answer "could not be decoded")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"not a zlib stream")
        + chunk(b"IEND", b"")
    )


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def flac_of_silence(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, 1, format="FLAC") as sound:
        block = np.zeros(rate * 60, dtype=np.int16)
        left = int(seconds * rate)
        while left > 0:
            sound.write(block[: min(left, block.size)])
            left -= block.size
    return buffer.getvalue()


def wav(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate), np.float32), rate, format="WAV")
    return buffer.getvalue()


def image_part(data: bytes) -> dict:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def audio_part(data: bytes, fmt: str) -> dict:
    return {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt},
    }


def body(*parts: dict) -> dict:
    return {
        "model": "tiny",
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "?"}]}],
    }


@pytest.fixture(scope="module")
def idle_service():
    service = EngineService()  # no model: every answer here comes before generation
    yield service
    service.shutdown()


def post(app, payload, *, raw: bytes | None = None):
    import httpx2

    async def go():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.post(
                "/v1/chat/completions",
                content=raw if raw is not None else json.dumps(payload).encode(),
                headers={"content-type": "application/json"},
            )

    return asyncio.run(go())


def test_an_image_over_the_per_image_limit_is_a_413_from_its_header_alone(idle_service):
    app = create_app(idle_service, ServerConfig())
    started = time.monotonic()
    response = post(app, body(image_part(png_header_only(12_000, 12_000))))
    assert time.monotonic() - started < 2
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "media_too_large" and error["param"] == "messages[0].content[0]"
    assert "144 megapixels" in error["message"] and "50 megapixels per image" in error["message"]
    assert app.state.server.queue.stats().waiting == 0  # the place in the queue was given back


def test_images_past_the_request_budget_or_count_are_a_413(idle_service):
    small = png(800, 600)  # 0.48 MP
    app = create_app(
        idle_service, ServerConfig(media_budget=MediaBudget(max_request_pixels=1_000_000))
    )
    response = post(app, body(image_part(small), image_part(small), image_part(small)))
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "messages[0].content[2]"
    assert "1 megapixels per request" in response.json()["error"]["message"]
    app = create_app(idle_service, ServerConfig(media_budget=MediaBudget(max_images=2)))
    response = post(app, body(image_part(small), image_part(small), image_part(small)))
    assert response.status_code == 413 and "2 images" in response.json()["error"]["message"]


def test_a_long_flac_of_silence_is_refused_from_its_header_within_a_second(idle_service):
    app = create_app(idle_service, ServerConfig())
    clip = flac_of_silence(1200)
    assert len(clip) < 200_000  # twenty minutes of silence compress to almost nothing
    started = time.monotonic()
    response = post(app, body(audio_part(clip, "flac")))
    assert time.monotonic() - started < 1
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "media_too_long" and "20 min" in error["message"]


def test_audio_past_the_request_budget_is_a_400(idle_service):
    app = create_app(idle_service, ServerConfig(media_budget=MediaBudget(max_audio_s=5)))
    response = post(app, body(audio_part(wav(3), "wav"), audio_part(wav(3), "wav")))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[1]"
    assert "per request" in response.json()["error"]["message"]


def test_a_full_queue_answers_429_before_reading_the_body(idle_service):
    app = create_app(idle_service, ServerConfig(max_waiting=0))
    ticket = app.state.server.queue.admit()  # the one place is taken
    try:
        response = post(app, None, raw=b"{ not even json")
    finally:
        ticket.release()
    assert response.status_code == 429 and response.json()["error"]["code"] == "queue_full"


def test_a_waiting_requests_images_are_handed_over_only_when_its_turn_comes(
    engine_service, finished_events, monkeypatch
):
    decoded: list[int] = []
    real = server_app.prepare_media

    def recording(messages, folder):
        images = sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if part.get("type") == "image"
        )
        decoded.append(images)
        return real(messages, folder)

    monkeypatch.setattr(server_app, "prepare_media", recording)
    with ServerThread(engine_service, ServerConfig(port=0, max_waiting=1)) as busy:
        client = openai.OpenAI(base_url=busy.url, api_key="unused", max_retries=0, timeout=120)
        model = client.models.list().data[0].id
        script_turns(engine_service, [("forever", "hello"), "Seen"])
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

        answers: list[str] = []

        def image_request() -> None:
            payload = body(image_part(png(64, 48)))
            answer = client.chat.completions.create(
                model=model, messages=payload["messages"], max_tokens=5
            )
            answers.append(answer.choices[0].message.content)

        first = threading.Thread(target=long_request)
        first.start()
        assert started.wait(60)
        second = threading.Thread(target=image_request)
        second.start()
        deadline = time.monotonic() + 30
        while busy.state.queue.stats().waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert decoded == [0]  # the waiting request's image is still its compressed bytes
        engine_service.cancel()
        first.join(60)
        second.join(60)
    assert decoded == [0, 1] and answers == ["Seen"]


def test_an_image_whose_pixels_do_not_decode_is_a_400_when_its_turn_comes(client, model_id):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=model_id, messages=body(image_part(png_header_only(64, 48)))["messages"]
        )
    assert caught.value.body["code"] == "media"
    assert "damaged" in caught.value.body["message"]
