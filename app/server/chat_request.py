"""Parse and check a `/v1/chat/completions` body into a `ChatRequest` for the engine service.

The messages are converted by `app.messages.from_openai_messages`; images and audio clips
are measured from their headers and counted against the server's media budget
(`PendingImage` / `PendingAudio`, handed to the engine by `app.server.media.prepare_media`
when the request's turn comes); documents in `file` parts are read (`load_document_part`).
Audio longer than the model's clip goes in as consecutive clips or is transcribed first
(`app.inputs`), within the budget's seconds. The sampling fields become one
`app.options.GenerationOptions`, whose limits are the app's single set. `response_format` (JSON mode, JSON Schema) and
`tool_choice` ("required" or a named function) with `parallel_tool_calls` become options
the engine enforces with a grammar.

The server is lenient the way vLLM and llama.cpp servers are: beyond OpenAI's fields it
takes their extras (`top_k`, `min_p`, `repetition_penalty` / `repeat_penalty`,
`chat_template_kwargs`, `reasoning`, `guided_json` / `json_schema`, `n_predict`,
`mm_processor_kwargs.max_soft_tokens` for the image budget, `cache_prompt`, ...) and
`prompt_cache_key`, which picks the prompt cache. Fields it has no use for are accepted;
fields it does not know are ignored and listed in the `ignored` of the request (the
response's `Warning` header). What would change the answer but cannot be done (`n` > 1,
`logprobs`, regex or grammar constraints) is a 400 naming the field.

The helpers here (`sampling_values`, `response_format_of`, `parse_tools`, `tool_choice_of`,
`thinking_of`, `build_options`, `parse_messages`) are shared by the other endpoints
(Responses, legacy completions, Ollama), so every API checks a field the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import AppError
from app.messages import from_openai_messages
from app.options import (
    FunctionChoice,
    GenerationOptions,
    OptionError,
    ResponseFormat,
    ToolChoice,
)
from app.server.config import ServerConfig
from app.server.errors import APIError, bad_request
from app.server.media import load_audio, load_document_part, load_image

# Accepted and ignored: they change nothing for a local single-user model (OpenAI's, and the
# vLLM / llama.cpp extras that only tune their own servers).
ACCEPTED_WITHOUT_EFFECT = frozenset(
    {
        "frequency_penalty", "presence_penalty", "logit_bias", "user", "metadata", "store",
        "service_tier", "modalities", "prediction", "safety_identifier", "verbosity",
        "web_search_options", "audio",
        # llama.cpp: the prompt cache is always on here; slots and sampler tuning.
        "cache_prompt", "id_slot", "slot_id", "n_keep", "n_probs", "samplers", "typical_p",
        "tfs_z", "mirostat", "mirostat_tau", "mirostat_eta", "dynatemp_range",
        "dynatemp_exponent", "dry_multiplier", "dry_base", "dry_allowed_length",
        "dry_penalty_last_n", "dry_sequence_breakers", "xtc_probability", "xtc_threshold",
        "penalty_last_n", "repeat_last_n", "penalize_nl", "t_max_predict_ms",
        "timings_per_token", "return_progress", "post_sampling_probs",
        # vLLM: detokenizer and scheduling details.
        "skip_special_tokens", "spaces_between_special_tokens", "add_generation_prompt",
        "priority", "request_id", "guided_decoding_backend", "guided_whitespace_pattern",
        "truncate_prompt_tokens", "return_tokens_as_token_ids", "include_stop_str_in_output",
        "documents", "use_beam_search", "length_penalty", "min_tokens", "top_a",
    }
)  # fmt: skip
# Constraints a client relies on that the grammar here does not take: refused, never ignored.
_UNSUPPORTED_CONSTRAINTS = ("guided_regex", "guided_choice", "guided_grammar", "grammar")
_CHAT_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "tools", "tool_choice",
        "parallel_tool_calls", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
        "repeat_penalty", "max_tokens", "max_completion_tokens", "n_predict", "stop", "seed",
        "n", "best_of", "response_format", "guided_json", "json_schema", "logprobs",
        "top_logprobs", "reasoning_effort", "reasoning", "chat_template_kwargs",
        "mm_processor_kwargs", "enable_thinking", "functions", "function_call",
        "prompt_cache_key", *_UNSUPPORTED_CONSTRAINTS,
    }
)  # fmt: skip
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass
class ChatRequest:
    """One checked generation request, whichever API it came through."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    tools: list[dict[str, Any]] | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    conversation_id: str | None = None  # `prompt_cache_key`: which prompt cache to use
    max_tokens_param: str | None = None  # the field that set max_tokens (None: the default)
    ignored: tuple[str, ...] = ()  # unknown fields, ignored (the `Warning` header)
    extra: dict[str, Any] = field(default_factory=dict)  # what an endpoint echoes back

    @property
    def enable_thinking(self) -> bool:
        return self.options.enable_thinking


def parse_chat_request(body: Any, config: ServerConfig) -> ChatRequest:
    """A `ChatRequest` from the decoded JSON body, or `APIError` (400/413) saying what is wrong.

    Media are measured, not decoded; documents are read.
    """
    body = require_object(body)
    model = require_model(body)
    refuse_unsupported(body)
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise bad_request("`functions` is deprecated; use `tools`.", param="functions")
    stream = require_bool(body, "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise bad_request("`stream_options` must be an object.", param="stream_options")

    values = sampling_values(body)
    max_tokens_param = max_tokens_into(
        values, body, ("max_completion_tokens", "max_tokens", "n_predict")
    )
    stop = body.get("stop")
    if stop is not None:
        values["stop"] = stop_list(stop)
    values["enable_thinking"] = thinking_of(body)
    processor_kwargs = body.get("mm_processor_kwargs") or {}
    if not isinstance(processor_kwargs, dict):
        raise bad_request("`mm_processor_kwargs` must be an object.", param="mm_processor_kwargs")
    if processor_kwargs.get("max_soft_tokens") is not None:
        values["image_budget"] = processor_kwargs["max_soft_tokens"]
    values["response_format"] = response_format_of(body)
    tools = parse_tools(body.get("tools"))
    values["tool_choice"] = tool_choice_of(body.get("tool_choice"), tools)
    if body.get("parallel_tool_calls") is not None:
        values["parallel_tool_calls"] = body["parallel_tool_calls"]
    options = build_options(values, {"max_tokens": max_tokens_param or "max_tokens"})
    messages = parse_messages(body.get("messages"), config)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        tools=tools,
        options=options,
        conversation_id=cache_key_of(body),
        max_tokens_param=max_tokens_param,
        ignored=unknown_fields(body, _CHAT_FIELDS),
    )


# --- shared field checks ---------------------------------------------------------------------


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` is required (see GET /v1/models).", param="model")
    return model


def require_bool(body: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"`{name}` must be true or false.", param=name)
    return value


def refuse_unsupported(body: Mapping[str, Any]) -> None:
    """400 for fields that would change the answer in a way this server cannot."""
    for name in ("n", "best_of"):
        if body.get(name, 1) not in (1, None):
            raise bad_request(f"Only `{name}` = 1 is supported.", param=name)
    for name in ("logprobs", "top_logprobs", "echo", "suffix"):
        if body.get(name):
            raise bad_request(f"`{name}` is not supported.", param=name)
    for name in _UNSUPPORTED_CONSTRAINTS:
        if body.get(name) is not None:
            raise bad_request(
                f"`{name}` is not supported; constrain the answer with `response_format` "
                "(JSON Schema) instead.",
                param=name,
            )


def unknown_fields(body: Mapping[str, Any], known: Iterable[str]) -> tuple[str, ...]:
    """The body's fields that are neither `known` nor accepted without effect, sorted."""
    return tuple(sorted(set(body) - set(known) - ACCEPTED_WITHOUT_EFFECT))


def sampling_values(body: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling fields that are set, under the options' names (`repeat_penalty`, as
    llama.cpp and Ollama call it, is `repetition_penalty`)."""
    values = {k: body[k] for k in SAMPLING if body.get(k) is not None}
    if body.get("repeat_penalty") is not None and "repetition_penalty" not in values:
        values["repetition_penalty"] = body["repeat_penalty"]
    return values


def max_tokens_into(
    values: dict[str, Any], body: Mapping[str, Any], names: Iterable[str]
) -> str | None:
    """Put the first of `names` the body sets into `values["max_tokens"]`; its name, or None.

    llama.cpp's `n_predict: -1` ("until the context is full") is left to the default.
    """
    for name in names:
        value = body.get(name)
        if value is None or (name in ("n_predict", "num_predict") and value in (-1, -2)):
            continue
        values["max_tokens"] = value
        return name
    return None


def stop_list(stop: Any) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, list | tuple):
        raise bad_request(
            "`stop` must be a non-empty string or a list of up to 16 of them.", param="stop"
        )
    return tuple(stops)


def cache_key_of(body: Mapping[str, Any]) -> str | None:
    key = body.get("prompt_cache_key")
    if key is not None and (not isinstance(key, str) or len(key) > 256):
        raise bad_request("`prompt_cache_key` must be a string.", param="prompt_cache_key")
    return key or None


def thinking_of(body: Mapping[str, Any]) -> Any:
    """The requested thinking switch (checked to be a boolean by `GenerationOptions`):
    `reasoning_effort`, `reasoning: {"effort"|"enabled"}` (OpenRouter, LiteLLM, Responses),
    `chat_template_kwargs.enable_thinking` (vLLM) or `enable_thinking`, the last one set wins."""
    enable_thinking: Any = False
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise bad_request("`reasoning` must be an object.", param="reasoning")
        if reasoning.get("effort") is not None:
            enable_thinking = effort_thinks(reasoning["effort"], "reasoning.effort")
        if reasoning.get("enabled") is not None:
            enable_thinking = reasoning["enabled"]
    effort = body.get("reasoning_effort")
    if effort is not None:
        enable_thinking = effort_thinks(effort, "reasoning_effort")
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise bad_request("`chat_template_kwargs` must be an object.", param="chat_template_kwargs")
    if "enable_thinking" in kwargs:
        enable_thinking = kwargs["enable_thinking"]
    if "enable_thinking" in body:
        enable_thinking = body["enable_thinking"]
    return enable_thinking


def effort_thinks(effort: Any, param: str) -> bool:
    """A reasoning effort as the thinking switch: anything but none/minimal thinks."""
    if effort not in REASONING_EFFORTS:
        raise bad_request(f"`{param}` must be one of {', '.join(REASONING_EFFORTS)}.", param=param)
    return effort not in ("none", "minimal")


def response_format_of(body: Mapping[str, Any]) -> ResponseFormat | None:
    """`response_format` (OpenAI; `json_object` may carry a `schema`, as Together's does), or
    vLLM's `guided_json` / llama.cpp's `json_schema` body field."""
    value = body.get("response_format")
    if value is not None:
        return format_from_openai(value, "response_format")
    for name in ("guided_json", "json_schema"):
        schema = body.get(name)
        if schema is not None:
            if not isinstance(schema, dict):
                raise bad_request(f"`{name}` must be a JSON schema object.", param=name)
            return ResponseFormat.json_schema(schema, strict=False)
    return None


def format_from_openai(value: Any, param: str) -> ResponseFormat | None:
    """A chat-completions `response_format` object as a `ResponseFormat` (None for text)."""
    if not isinstance(value, dict):
        raise bad_request(f"`{param}` must be an object.", param=param)
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        schema = value.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise bad_request(f"`{param}.schema` must be a JSON schema object.", param=param)
        return ResponseFormat("json_object", schema)
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request(f"`{param}.json_schema` must be an object.", param=param)
        return schema_format(spec, f"{param}.json_schema")
    raise bad_request(
        f"`{param}.type` must be text, json_object or json_schema; got {kind!r}.", param=param
    )


def schema_format(spec: Mapping[str, Any], param: str) -> ResponseFormat:
    """`{"name", "schema", "strict", "description"}` (OpenAI's json_schema) as a format.

    Without `strict: true`, JSON Schema keywords the grammar cannot enforce are ignored
    (as OpenAI's non-strict mode only follows the schema as well as it can)."""
    schema = spec.get("schema")
    if schema is None:
        schema = {}
    if not isinstance(schema, dict):
        raise bad_request(f"`{param}.schema` must be a JSON schema object.", param=param)
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request(f"`{param}.strict` must be true or false.", param=param)
    name = spec.get("name") or ""
    description = spec.get("description") or ""
    if not isinstance(name, str) or not isinstance(description, str):
        raise bad_request(f"`{param}.name` and `.description` must be strings.", param=param)
    return ResponseFormat(
        "json_schema", schema, name=name, strict=bool(strict), description=description
    )


def parse_tools(tools: Any, param: str = "tools") -> list[dict[str, Any]] | None:
    """Chat-completions tools (`{"type": "function", "function": {...}}`), checked."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_request(f"`{param}` must be a list.", param=param)
    checked: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"{param}[{i}]"
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(tool.get("function"), dict)
        ):
            raise bad_request(
                f"`{where}` must be {{'type': 'function', 'function': {{...}}}}.", param=where
            )
        checked.append(function_tool(tool["function"], where))
    names = [t["function"]["name"] for t in checked]
    if len(set(names)) != len(names):
        raise bad_request("Tool names must be unique.", param=param)
    return checked or None


def function_tool(fn: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One function's `{"name", "description", "parameters"}`, checked, as a chat tool."""
    name = fn.get("name")
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 64
        or not all(c.isalnum() or c in "_-" for c in name)
    ):
        raise bad_request(f"`{where}.name` must be 1-64 letters, digits, _ or -.", param=where)
    parameters = fn.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise bad_request(f"`{where}.parameters` must be a JSON schema object.", param=where)
    description = fn.get("description") or ""
    if not isinstance(description, str):
        raise bad_request(f"`{where}.description` must be a string.", param=where)
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def tool_choice_of(
    choice: Any, tools: list[dict[str, Any]] | None, param: str = "tool_choice"
) -> ToolChoice:
    """`tool_choice` as the options take it: "auto", "none", "required" or a `FunctionChoice`
    (`{"type": "function", "function": {"name"}}`, or the Responses API's `{"type":
    "function", "name"}`)."""
    if choice is None or choice == "auto":
        return "auto"
    if choice == "none":
        return "none"
    if choice == "required" or (isinstance(choice, dict) and choice.get("type") == "any"):
        if not tools:
            raise bad_request(f'`{param}` "required" needs `tools`.', param=param)
        return "required"
    if isinstance(choice, dict) and choice.get("type") == "function":
        inner = choice.get("function")
        wanted = inner.get("name") if isinstance(inner, dict) else choice.get("name")
        names = [t["function"]["name"] for t in tools or ()]
        if wanted not in names:
            raise bad_request(f"`{param}` names {wanted!r}, which is not in `tools`.", param=param)
        return FunctionChoice(wanted)
    raise bad_request(f"`{param}` must be none, auto, required or a function.", param=param)


def build_options(values: dict[str, Any], params: Mapping[str, str] | None = None) -> Any:
    """`GenerationOptions(**values)`, a 400 naming the request's field when one is wrong
    (`params`: option name -> the field it came from)."""
    names = {"image_budget": "mm_processor_kwargs", **(params or {})}
    try:
        return GenerationOptions(**values)
    except OptionError as exc:
        param = names.get(exc.name, exc.name)
        raise bad_request(f"`{param}`: {exc}", param=param) from exc
    except TypeError as exc:
        raise bad_request(str(exc)) from exc


def parse_messages(messages: Any, config: ServerConfig) -> list[dict[str, Any]]:
    """OpenAI chat messages as Hugging Face messages, each image and recording measured from
    its header against one request's media budget, each `file` part read as a document;
    400/413 naming the part at fault."""
    if isinstance(messages, list) and len(messages) > config.max_messages:
        raise APIError(413, f"More than {config.max_messages} messages.", param="messages")
    tally = config.media_budget.tally()

    def image(url: str, param: str) -> Any:
        return load_image(
            url,
            param=param,
            max_bytes=config.max_media_bytes,
            allowed_folders=config.allowed_folders,
            tally=tally,
        )

    def audio(part: Any, param: str) -> Any:
        return load_audio(part, param=param, max_bytes=config.max_media_bytes, tally=tally)

    def document(part: Any, param: str) -> dict[str, Any]:
        return load_document_part(part, param=param, max_bytes=config.max_media_bytes)

    try:
        return from_openai_messages(messages, image=image, audio=audio, document=document)
    except AppError as exc:
        raise APIError(400, str(exc), param=exc.param) from exc
