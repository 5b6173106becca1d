"""Structured output as the popular clients ask for it, against `gemma-desk serve`'s app on
127.0.0.1 with the tiny random model: the openai package's `chat.completions.parse`,
LangChain's `with_structured_output` (its default method), pydantic-ai's `NativeOutput`
and instructor's `Mode.JSON_SCHEMA`.

Nothing is scripted: the model samples at random and only the grammar makes each answer a
valid object. The Pydantic models are bounded (enums, integer ranges, `max_length`) so a
random model closes them within `max_tokens`. The client packages are the `clients` extra
(`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field

from .conftest import API_KEY

MAX_TOKENS = 200
PROMPT = "Describe a pet as JSON."


class Pet(BaseModel):
    kind: Literal["cat", "dog", "fish"]
    age: int = Field(ge=0, le=20)
    name: str = Field(max_length=8)
    indoor: bool


def assert_pet(value: object) -> None:
    assert isinstance(value, Pet), value
    Pet.model_validate(value.model_dump())  # every bound holds


def test_openai_parse_with_a_pydantic_model(client, model_id):
    completion = client.chat.completions.parse(
        model=model_id,
        messages=[{"role": "user", "content": PROMPT}],
        response_format=Pet,
        max_tokens=MAX_TOKENS,
        seed=1,
    )
    message = completion.choices[0].message
    assert_pet(message.parsed)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == model_id


def test_langchain_with_structured_output_default_method(server, model_id):
    langchain_openai = pytest.importorskip(
        "langchain_openai", reason="the clients extra (pip install '.[clients]') is not installed"
    )
    chat = langchain_openai.ChatOpenAI(
        base_url=server.url, api_key=API_KEY, model=model_id, max_tokens=MAX_TOKENS, max_retries=0
    )
    assert_pet(chat.with_structured_output(Pet).invoke(PROMPT))


def test_pydantic_ai_native_output(server, model_id):
    pydantic_ai = pytest.importorskip(
        "pydantic_ai", reason="the clients extra (pip install '.[clients]') is not installed"
    )
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(model_id, provider=OpenAIProvider(base_url=server.url, api_key=API_KEY))
    agent = pydantic_ai.Agent(model, output_type=pydantic_ai.NativeOutput(Pet), retries=0)
    result = asyncio.run(agent.run(PROMPT, model_settings={"max_tokens": MAX_TOKENS}))
    assert_pet(result.output)


def test_instructor_json_schema_mode(server, model_id):
    instructor = pytest.importorskip(
        "instructor", reason="the clients extra (pip install '.[clients]') is not installed"
    )
    client = instructor.from_openai(
        openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0),
        mode=instructor.Mode.JSON_SCHEMA,
    )
    pet = client.chat.completions.create(
        model=model_id,
        response_model=Pet,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=MAX_TOKENS,
        max_retries=0,
    )
    assert_pet(pet)
