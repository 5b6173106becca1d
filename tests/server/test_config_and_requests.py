"""Safety rules and request checks that need no running model."""

from __future__ import annotations

import argparse

import pytest

from app.options import FunctionChoice, GenerationOptions, ResponseFormat
from app.server import command
from app.server.chat_request import parse_chat_request
from app.server.config import ServerConfig, ServerConfigError, is_loopback
from app.server.errors import APIError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_key(host):
    assert is_loopback(host)
    ServerConfig(host=host).validate()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "my-mac.local"])
def test_any_other_host_requires_an_api_key(host):
    with pytest.raises(ServerConfigError, match="API key"):
        ServerConfig(host=host).validate()
    ServerConfig(host=host, api_key="long-enough-key").validate()


def test_serve_refuses_a_public_bind_without_a_key_before_loading(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(
        ["--model", str(tmp_path / "missing"), "--host", "0.0.0.0", "--api-key", ""]
    )
    assert command.run(args) == 2
    assert "API key" in capsys.readouterr().err


def chat(**overrides):
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], **overrides}
    return parse_chat_request(body, ServerConfig())


def error_of(**overrides) -> APIError:
    with pytest.raises(APIError) as caught:
        chat(**overrides)
    return caught.value


def test_sampling_options_go_to_the_engine():
    request = chat(temperature=0.5, top_p=0.9, top_k=40, seed=7, max_tokens=12, stop="END")
    assert request.options == GenerationOptions(
        max_tokens=12, temperature=0.5, top_p=0.9, top_k=40, seed=7, stop=("END",)
    )


def test_the_extras_vllm_takes_are_options_too():
    request = chat(
        min_p=0.05,
        repetition_penalty=1.1,
        mm_processor_kwargs={"max_soft_tokens": 560},
        prompt_cache_key="conversation-7",
    )
    assert (request.options.min_p, request.options.repetition_penalty) == (0.05, 1.1)
    assert request.options.image_budget == 560
    assert request.conversation_id == "conversation-7"


def test_an_option_out_of_its_range_names_the_field():
    assert error_of(top_k=-1).param == "top_k"
    assert error_of(seed=-5).param == "seed"
    assert error_of(mm_processor_kwargs={"max_soft_tokens": 100}).param == "mm_processor_kwargs"


def test_thinking_must_be_a_boolean():
    assert error_of(chat_template_kwargs={"enable_thinking": "false"}).param == "enable_thinking"


def test_unknown_parameters_are_ignored_and_listed():
    request = chat(temprature=0.5, zeta={"a": 1})
    assert request.ignored == ("temprature", "zeta")
    assert request.options == GenerationOptions()


def test_the_extras_vllm_and_llama_cpp_servers_take_are_accepted_without_a_warning():
    request = chat(cache_prompt=True, n_keep=4, skip_special_tokens=False, user="me", store=True)
    assert request.ignored == ()


def test_llama_cpp_names_map_to_the_same_options():
    request = chat(repeat_penalty=1.2, n_predict=33)
    assert (request.options.repetition_penalty, request.options.max_tokens) == (1.2, 33)
    assert request.max_tokens_param == "n_predict"
    assert chat(n_predict=-1).max_tokens_param is None  # "until the context is full"


def test_reasoning_objects_turn_thinking_on_and_off():
    assert chat(reasoning={"effort": "medium"}).enable_thinking
    assert not chat(reasoning={"effort": "none"}).enable_thinking
    assert chat(reasoning={"enabled": True}).enable_thinking
    assert error_of(reasoning={"effort": "huge"}).param == "reasoning.effort"


def test_constraints_the_grammar_does_not_take_are_refused_not_ignored():
    for name, value in [("guided_regex", "a+"), ("guided_choice", ["a"]), ("grammar", "root")]:
        assert error_of(**{name: value}).param == name


def test_remote_image_urls_are_never_fetched():
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    error = error_of(messages=[{"role": "user", "content": content}])
    assert (error.status, error.code) == (400, "remote_url_not_allowed")


def test_a_tool_message_must_answer_an_earlier_call():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "tool", "tool_call_id": "call_x", "content": "1"},
    ]
    assert error_of(messages=messages).param == "messages[1].tool_call_id"


def test_max_tokens_above_the_limit_is_400():
    assert error_of(max_tokens=10**9).param == "max_tokens"


def test_thinking_follows_reasoning_effort_or_template_kwargs():
    assert chat(reasoning_effort="high").enable_thinking
    assert not chat(reasoning_effort="none").enable_thinking
    assert chat(chat_template_kwargs={"enable_thinking": True}).enable_thinking


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_tool_choice_goes_to_the_options():
    assert chat(tools=[TOOL], tool_choice="none").options.tool_choice == "none"
    assert chat(tools=[TOOL], tool_choice="required").options.tool_choice == "required"
    named = {"type": "function", "function": {"name": "f"}}
    request = chat(tools=[TOOL], tool_choice=named, parallel_tool_calls=False)
    assert request.options.tool_choice == FunctionChoice("f")
    assert request.options.parallel_tool_calls is False
    assert request.tools[0]["function"]["name"] == "f"


def test_a_forced_tool_choice_needs_the_tool():
    assert error_of(tool_choice="required").param == "tool_choice"
    named = {"type": "function", "function": {"name": "g"}}
    assert error_of(tools=[TOOL], tool_choice=named).param == "tool_choice"


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_response_format_json_schema_becomes_the_options_format():
    spec = {"name": "answer", "schema": SCHEMA, "strict": True}
    fmt = chat(response_format={"type": "json_schema", "json_schema": spec}).options.response_format
    assert fmt == ResponseFormat("json_schema", SCHEMA, name="answer", strict=True)
    assert chat(response_format={"type": "text"}).options.response_format is None


def test_json_mode_may_carry_a_schema_and_vllm_guided_json_is_a_schema():
    fmt = chat(response_format={"type": "json_object"}).options.response_format
    assert fmt == ResponseFormat.json_object()
    fmt = chat(response_format={"type": "json_object", "schema": SCHEMA}).options.response_format
    assert fmt.schema == SCHEMA
    for name in ("guided_json", "json_schema"):
        fmt = chat(**{name: SCHEMA}).options.response_format
        assert (fmt.type, fmt.schema, fmt.strict) == ("json_schema", SCHEMA, False)


def test_a_malformed_response_format_names_the_field():
    assert error_of(response_format={"type": "xml"}).param == "response_format"
    bad = {"type": "json_schema", "json_schema": {"schema": []}}
    assert error_of(response_format=bad).param == "response_format.json_schema"


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "7"])
def test_a_seed_outside_0_to_2_64_is_a_400(seed):
    error = error_of(seed=seed)
    assert error.status == 400 and error.param == "seed"


@pytest.mark.parametrize(
    "fields",
    [{"enable_thinking": "false"}, {"chat_template_kwargs": {"enable_thinking": 0}}],
)
def test_enable_thinking_must_be_a_boolean(fields):
    error = error_of(**fields)
    assert error.status == 400 and "enable_thinking" in error.param


def test_enable_thinking_false_turns_thinking_off():
    assert chat(enable_thinking=False, reasoning_effort="high").enable_thinking is False
    assert chat(chat_template_kwargs={"enable_thinking": True}).enable_thinking is True


def test_the_sampling_options_refuse_a_seed_mlx_cannot_take():
    from mlx_model.sampling import MAX_SEED, SamplingOptions

    assert SamplingOptions().replace(seed=MAX_SEED).seed == MAX_SEED
    for seed in (-1, MAX_SEED + 1):
        with pytest.raises(ValueError, match="seed"):
            SamplingOptions().replace(seed=seed)


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        ("MediaTooLargeError", "media_too_large", 413),
        ("MediaTooLongError", "media_too_long", 400),
        ("CorruptMediaError", "media", 400),
        ("ChatFormatError", "invalid_request", 400),
    ],
)
def test_processing_errors_map_to_their_kind_and_status_by_type(error, kind, status):
    from app.server.errors import engine_error
    from mlx_model.errors import error_kind
    from mlx_model.processing import errors

    exc = getattr(errors, error)("bad input")
    assert error_kind(exc) == kind
    assert engine_error(kind, "bad input").status == status

    class Renamed(type(exc)):  # a subclass whose name ends differently still maps by type
        pass

    assert error_kind(Renamed("bad input")) == kind


def asgi_get(app, path: str, **headers: str):
    """One request straight into the ASGI app (no socket is opened)."""
    import asyncio

    import httpx2

    async def go():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://gpu-box") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(go())


def test_health_needs_the_key_when_the_server_is_reachable_from_outside():
    from app.engine_service import EngineService
    from app.server.app import create_app

    service = EngineService()
    try:
        app = create_app(service, ServerConfig(host="0.0.0.0", api_key="long-enough-key"))
        assert asgi_get(app, "/health").status_code == 401
        answered = asgi_get(app, "/health", authorization="Bearer long-enough-key")
        assert answered.status_code == 503 and answered.json()["status"] == "unavailable"
        loopback = create_app(service, ServerConfig(host="127.0.0.1", api_key="long-enough-key"))
        assert asgi_get(loopback, "/health", host="127.0.0.1").status_code == 503
    finally:
        service.shutdown()


def test_json_nested_deeper_than_the_limit_is_a_400_not_a_500():
    import asyncio

    import httpx2

    from app.engine_service import EngineService
    from app.server.app import MAX_JSON_NESTING, create_app

    service = EngineService()
    app = create_app(service, ServerConfig())

    async def post(body: bytes):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.post(
                "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
            )

    try:
        for depth in (MAX_JSON_NESTING + 1, 100_000):
            body = b'{"model": "m", "messages": ' + b"[" * depth + b"]" * depth + b"}"
            response = asyncio.run(post(body))
            assert response.status_code == 400, response.text
            assert "nests deeper" in response.json()["error"]["message"]
    finally:
        service.shutdown()
