"""Documents as OpenAI `file` parts (base64 `file_data`) and audio longer than one clip as
`input_audio`, within the server's limits."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
import soundfile

from app.documents import Document
from app.server.chat_request import parse_chat_request
from app.server.config import ServerConfig
from app.server.errors import APIError
from tests.app.document_sources import write_pdf


def file_part(data: bytes, filename: str = "report.pdf", mime: str = "application/pdf") -> dict:
    encoded = base64.b64encode(data).decode()
    return {"type": "file", "file": {"filename": filename,
                                     "file_data": f"data:{mime};base64,{encoded}"}}  # fmt: skip


def ask(*parts: dict, text: str = "What does it say?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, *parts]}]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> bytes:
    pages = ["The quarterly revenue was 4.2 million euros.", "Costs fell by nine percent."]
    return write_pdf(tmp_path_factory.mktemp("docs") / "report.pdf", pages).read_bytes()


def test_a_file_part_is_read_as_a_document_when_the_request_is_parsed(report):
    request = parse_chat_request({"model": "m", "messages": ask(file_part(report))}, ServerConfig())

    part = request.messages[0]["content"][1]
    assert part["type"] == "document" and part["name"] == "report.pdf"
    assert isinstance(part["document"], Document) and part["document"].page_count == 2


def test_a_document_over_the_media_limit_is_a_413(report):
    body = {"model": "m", "messages": ask(file_part(report))}
    with pytest.raises(APIError) as caught:
        parse_chat_request(body, ServerConfig(max_media_bytes=len(report) // 2))
    assert caught.value.status == 413


def test_an_encrypted_pdf_is_a_400_naming_it(tmp_path):
    locked = write_pdf(tmp_path / "locked.pdf", ["secret"], user_password="pw").read_bytes()
    body = {"model": "m", "messages": ask(file_part(locked, "locked.pdf"))}
    with pytest.raises(APIError) as caught:
        parse_chat_request(body, ServerConfig())
    assert caught.value.status == 400 and "locked.pdf" in str(caught.value)
    assert caught.value.param == "messages[0].content[1]"


def test_an_uploaded_file_id_is_refused_with_what_to_send_instead():
    body = {"model": "m", "messages": ask({"type": "file", "file": {"file_id": "file-abc"}})}
    with pytest.raises(APIError) as caught:
        parse_chat_request(body, ServerConfig())
    assert "file_data" in str(caught.value)


def test_a_pdf_in_a_request_reaches_the_model_as_its_text(client, model_id, report):
    plain = client.chat.completions.create(model=model_id, messages=ask(), max_tokens=1)
    response = client.chat.completions.create(
        model=model_id, messages=ask(file_part(report)), max_tokens=1
    )

    added = response.usage.prompt_tokens - plain.usage.prompt_tokens
    assert added > 25  # the two pages' text, the name and the page markers


def test_audio_longer_than_one_clip_goes_in_as_timestamped_clips(client, model_id):
    t = np.arange(35 * 16_000) / 16_000
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000,
                    format="FLAC")  # fmt: skip
    audio = {"data": base64.b64encode(buffer.getvalue()).decode(), "format": "flac"}

    response = client.chat.completions.create(
        model=model_id,
        messages=ask({"type": "input_audio", "input_audio": audio}, text="Summarize."),
        max_tokens=1,
    )

    assert response.usage.prompt_tokens > 750 + 125  # a full clip and a 5 s one


def test_a_bad_file_part_is_a_400_in_openai_shape(client, model_id):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=model_id, messages=ask({"type": "file", "file": {"file_data": "%%%"}}),
            max_tokens=1,
        )  # fmt: skip
    assert "base64" in caught.value.body["message"]
