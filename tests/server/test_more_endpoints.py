"""Legacy completions, embeddings, model aliases, lenient fields and Ollama's API as raw HTTP:
what clients other than the openai package's chat rely on."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from tests.doubles import local_server, script_turns

from .conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def root(server) -> str:
    return server.url.removesuffix("/v1")


# --- /v1/completions ---------------------------------------------------------------------------


def test_a_legacy_completion_answers_the_prompt(client, model_id, engine_service):
    script_turns(engine_service, ["Paris"])
    completion = client.completions.create(model=model_id, prompt="Capital of France?")
    assert completion.choices[0].text == "Paris"
    assert (completion.object, completion.model) == ("text_completion", model_id)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0


def test_a_legacy_completion_stops_at_16_tokens_by_default(client, model_id, engine_service):
    script_turns(engine_service, [("forever", "word")])
    completion = client.completions.create(model=model_id, prompt="Go on")
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 16


def test_a_streamed_legacy_completion_ends_with_done(client, model_id, engine_service):
    script_turns(engine_service, ["One two three"])
    chunks = list(
        client.completions.create(
            model=model_id, prompt="Count", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "One two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0


def test_echo_and_suffix_are_refused(client, model_id):
    for field in ("echo", "suffix"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.completions.create(
                model=model_id, prompt="x", **{field: True if field == "echo" else "y"}
            )
        assert caught.value.body["param"] == field


# --- embeddings ---------------------------------------------------------------------------------


def test_embeddings_are_a_clear_501(client, model_id, server):
    with pytest.raises(openai.InternalServerError) as caught:
        client.embeddings.create(model=model_id, input="hello")
    assert caught.value.status_code == 501
    assert "no embedding head" in caught.value.message
    ollama = httpx2.post(root(server) + "/api/embed", headers=AUTH, json={"model": model_id})
    assert ollama.status_code == 501 and "no embedding head" in ollama.json()["error"]


# --- names and leniency ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def aliased(engine_service):
    with local_server(service=engine_service, model_aliases=("gpt-4o-mini",)) as running:
        yield running


def test_aliases_reach_the_served_model_which_says_it_answered(aliased, engine_service):
    client = openai.OpenAI(base_url=aliased.url, api_key="none", max_retries=0)
    served = client.models.list().data[0]
    assert "gpt-4o-mini" in served.model_extra["aliases"]
    for name in ("gpt-4o-mini", "GPT-4o-mini:latest", served.id):
        script_turns(engine_service, ["Hi"])
        reply = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=5
        )
        assert reply.model == served.id
    assert client.models.retrieve("gpt-4o-mini").id == served.id
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="llama-3", messages=[{"role": "user", "content": "x"}])


def test_unknown_fields_are_ignored_and_named_in_a_warning_header(server, model_id, engine_service):
    script_turns(engine_service, ["Fine"])
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
        "cache_prompt": True,
        "mystery_knob": 3,
        "another": "x",
    }
    response = httpx2.post(server.url + "/chat/completions", headers=AUTH, json=body, timeout=60)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Fine"
    warning = response.headers["warning"]
    assert "another, mystery_knob" in warning and "cache_prompt" not in warning


def test_max_tokens_beyond_the_context_is_cut_to_it_not_refused(client, model_id, engine_service):
    script_turns(engine_service, ["Short"])
    reply = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=500_000
    )
    assert reply.choices[0].message.content == "Short"


# --- Ollama's API over raw HTTP ---------------------------------------------------------------


def test_ollama_needs_the_key_like_v1_and_answers_errors_in_its_shape(server, model_id):
    refused = httpx2.get(root(server) + "/api/tags")
    assert refused.status_code == 401 and "API key" in refused.json()["error"]
    missing = httpx2.post(
        root(server) + "/api/chat",
        headers=AUTH,
        json={"model": "llama3:8b", "messages": [{"role": "user", "content": "x"}]},
    )
    assert missing.status_code == 404 and "llama3:8b" in missing.json()["error"]


def test_ollama_chat_streams_ndjson_until_done(server, model_id, engine_service):
    script_turns(engine_service, ["The quick brown fox"])
    body = {"model": model_id, "messages": [{"role": "user", "content": "Hi"}]}
    with httpx2.stream(
        "POST", root(server) + "/api/chat", headers=AUTH, json=body, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"]
    assert "".join(line["message"]["content"] for line in lines) == "The quick brown fox"
    final = lines[-1]
    assert final["done_reason"] == "stop" and final["eval_count"] > 0
    assert final["prompt_eval_count"] > 0 and final["total_duration"] > 0


def test_an_empty_ollama_request_only_loads_the_model(server, model_id):
    reply = httpx2.post(
        root(server) + "/api/generate", headers=AUTH, json={"model": model_id, "stream": False}
    )
    assert reply.json()["done"] and reply.json()["done_reason"] == "load"


def test_ollama_raw_prompts_are_refused(server, model_id):
    reply = httpx2.post(
        root(server) + "/api/generate",
        headers=AUTH,
        json={"model": model_id, "prompt": "x", "raw": True},
    )
    assert reply.status_code == 400 and "chat template" in reply.json()["error"]


def test_ollama_root_says_it_is_running(server):
    assert httpx2.get(root(server) + "/", headers=AUTH).text == "Ollama is running"


def test_a_web_page_cannot_post_a_plain_text_body_but_other_clients_may(server, model_id):
    body = json.dumps({"model": model_id, "prompt": "", "stream": False})
    from_page = httpx2.post(
        root(server) + "/api/generate",
        headers={**AUTH, "Content-Type": "text/plain", "Origin": "https://example.com"},
        content=body,
    )
    assert from_page.status_code == 400 and "JSON" in from_page.json()["error"]
    from_a_client = httpx2.post(root(server) + "/api/generate", headers=AUTH, content=body)
    assert from_a_client.status_code == 200 and from_a_client.json()["done_reason"] == "load"
