"""Parse and check a `/v1/chat/completions` body into what `engine.stream` takes.

OpenAI messages become Hugging Face chat messages: content parts `{"type": "text"}`,
`{"type": "image", "image": PIL|path}` and `{"type": "audio", "audio": (samples, rate)}`;
assistant `tool_calls` get their JSON arguments parsed; a `tool` message gets the name
of the call it answers. Every problem is a 400 naming the offending field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from app.server.config import ServerConfig
from app.server.errors import APIError, bad_request
from app.server.media import load_audio, load_image

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Accepted and ignored: they change nothing for a local single-user model.
_IGNORED = {
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "user",
    "metadata",
    "store",
    "parallel_tool_calls",
    "service_tier",
    "modalities",
    "prediction",
    "safety_identifier",
    "prompt_cache_key",
    "verbosity",
}


@dataclass
class ChatRequest:
    """One checked chat request."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    tools: list[dict[str, Any]] | None = None
    enable_thinking: bool = False
    options: dict[str, Any] = field(
        default_factory=dict
    )  # max_tokens, temperature, ... for engine.stream


def _number(
    body: dict[str, Any], name: str, low: float, high: float, *, integer: bool = False
) -> Any:
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise bad_request(
            f"`{name}` must be {'an integer' if integer else 'a number'}.", param=name
        )
    if not low <= value <= high:
        raise bad_request(f"`{name}` must be between {low} and {high}; got {value}.", param=name)
    return value


def parse_chat_request(body: Any, config: ServerConfig) -> ChatRequest:
    """A `ChatRequest` from the decoded JSON body, or `APIError` (400/413) saying what is wrong."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` is required (see GET /v1/models).", param="model")
    n = body.get("n", 1)
    if n != 1:
        raise bad_request("Only `n` = 1 is supported.", param="n")
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise bad_request("Only the text `response_format` is supported.", param="response_format")
    for name in ("logprobs", "top_logprobs"):
        if body.get(name):
            raise bad_request(f"`{name}` is not supported.", param=name)
    known = {
        "model", "messages", "stream", "stream_options", "tools", "tool_choice", "temperature",
        "top_p", "top_k", "max_tokens", "max_completion_tokens", "stop", "seed", "n",
        "response_format", "logprobs", "top_logprobs", "reasoning_effort", "chat_template_kwargs",
        "enable_thinking", "functions", "function_call",
    } | _IGNORED  # fmt: skip
    unknown = sorted(set(body) - known)
    if unknown:
        raise bad_request(f"Unknown parameter: `{unknown[0]}`.", param=unknown[0])
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise bad_request("`functions` is deprecated; use `tools`.", param="functions")

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("`stream` must be true or false.", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise bad_request("`stream_options` must be an object.", param="stream_options")

    options: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        max_tokens = _number({name: max_tokens}, name, 1, config.max_tokens_limit, integer=True)
    options["max_tokens"] = max_tokens or config.default_max_tokens
    for name, low, high, integer in (
        ("temperature", 0.0, 2.0, False),
        ("top_p", 0.0, 1.0, False),
        ("top_k", 0, 1_000_000, True),
        ("seed", -(2**63), 2**64 - 1, True),
    ):
        value = _number(body, name, low, high, integer=integer)
        if value is not None:
            options[name] = value
    if options.get("top_p") == 0:
        raise bad_request("`top_p` must be above 0.", param="top_p")
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or not all(isinstance(s, str) and s for s in stops)
            or len(stops) > 16
        ):
            raise bad_request(
                "`stop` must be a non-empty string or a list of up to 16 of them.", param="stop"
            )
        options["stop"] = list(stops)

    enable_thinking = False
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in ("none", "minimal", "low", "medium", "high"):
            raise bad_request(
                "`reasoning_effort` must be none, minimal, low, medium or high.",
                param="reasoning_effort",
            )
        enable_thinking = effort not in ("none", "minimal")
    kwargs = body.get("chat_template_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise bad_request("`chat_template_kwargs` must be an object.", param="chat_template_kwargs")
    if "enable_thinking" in kwargs:
        enable_thinking = bool(kwargs["enable_thinking"])
    if "enable_thinking" in body:
        enable_thinking = bool(body["enable_thinking"])

    tools = _parse_tools(body.get("tools"), body.get("tool_choice"))
    messages = _parse_messages(body.get("messages"), config)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        tools=tools,
        enable_thinking=enable_thinking,
        options=options,
    )


def _parse_tools(tools: Any, tool_choice: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        if tool_choice not in (None, "none", "auto"):
            raise bad_request("`tool_choice` needs `tools`.", param="tool_choice")
        return None
    if not isinstance(tools, list):
        raise bad_request("`tools` must be a list.", param="tools")
    checked: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(tool.get("function"), dict)
        ):
            raise bad_request(
                f"`{where}` must be {{'type': 'function', 'function': {{...}}}}.", param=where
            )
        fn = tool["function"]
        name = fn.get("name")
        if (
            not isinstance(name, str)
            or not name
            or len(name) > 64
            or not all(c.isalnum() or c in "_-" for c in name)
        ):
            raise bad_request(
                f"`{where}.function.name` must be 1-64 letters, digits, _ or -.", param=where
            )
        parameters = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise bad_request(
                f"`{where}.function.parameters` must be a JSON schema object.", param=where
            )
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise bad_request(f"`{where}.function.description` must be a string.", param=where)
        checked.append(
            {
                "type": "function",
                "function": {"name": name, "description": description, "parameters": parameters},
            }
        )
    names = [t["function"]["name"] for t in checked]
    if len(set(names)) != len(names):
        raise bad_request("Tool names must be unique.", param="tools")
    if tool_choice in (None, "auto", "required"):
        return checked or None
    if tool_choice == "none":
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        wanted = (tool_choice.get("function") or {}).get("name")
        chosen = [t for t in checked if t["function"]["name"] == wanted]
        if not chosen:
            raise bad_request(
                f"`tool_choice` names {wanted!r}, which is not in `tools`.", param="tool_choice"
            )
        return chosen  # only that tool is offered (the model is not forced to call it)
    raise bad_request(
        "`tool_choice` must be none, auto, required or a function.", param="tool_choice"
    )


def _text_of(content: Any, where: str) -> str:
    """Content that must be text: a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise bad_request(
                    f"`{where}.content[{j}]` must be a text part here.", param=f"{where}.content"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise bad_request(
        f"`{where}.content` must be a string or a list of parts.", param=f"{where}.content"
    )


def _user_content(content: Any, where: str, config: ServerConfig) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise bad_request(
            f"`{where}.content` must be a string or a non-empty list of parts.",
            param=f"{where}.content",
        )
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if not isinstance(url, str) or not url:
                raise bad_request(f"`{param}.image_url.url` is required.", param=param)
            image = load_image(
                url,
                param=param,
                max_bytes=config.max_media_bytes,
                allowed_folders=config.allowed_folders,
            )
            parts.append({"type": "image", "image": image})
        elif kind == "input_audio":
            audio = load_audio(
                part.get("input_audio"), param=param, max_bytes=config.max_media_bytes
            )
            parts.append({"type": "audio", "audio": audio})
        else:
            raise bad_request(
                f"`{param}` must be a text, image_url or input_audio part; got {kind!r}.",
                param=param,
            )
    return parts


def _parse_messages(messages: Any, config: ServerConfig) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` must be a non-empty list.", param="messages")
    if len(messages) > config.max_messages:
        raise APIError(413, f"More than {config.max_messages} messages.", param="messages")
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, to name tool responses
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise bad_request(
                f"`{where}.role` must be one of {', '.join(sorted(_ROLES))}.", param=f"{where}.role"
            )
        role = message["role"]
        content = message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_of(content, where)})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content, where, config)})
        elif role == "assistant":
            converted: dict[str, Any] = {"role": "assistant", "content": _text_of(content, where)}
            calls = message.get("tool_calls")
            if calls:
                converted["tool_calls"] = _assistant_tool_calls(calls, where, call_names)
            out.append(converted)
        else:  # tool (or the deprecated function role)
            call_id = message.get("tool_call_id")
            name = message.get("name") or call_names.get(call_id or "")
            if not name:
                raise bad_request(
                    f"`{where}.tool_call_id` does not match a tool call of an earlier assistant message.",
                    param=f"{where}.tool_call_id",
                )
            # Kept as text: the chat template renders a string response as it came.
            text = _text_of(content, where)
            out.append(
                {"role": "tool", "name": name, "tool_call_id": call_id or "", "content": text}
            )
    return out


def _assistant_tool_calls(
    calls: Any, where: str, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise bad_request(f"`{where}.tool_calls` must be a list.", param=f"{where}.tool_calls")
    converted = []
    for k, call in enumerate(calls):
        param = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(f"`{param}.function.name` is required.", param=param)
        arguments = fn.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError as exc:
                raise bad_request(
                    f"`{param}.function.arguments` is not valid JSON: {exc}", param=param
                ) from exc
        if not isinstance(arguments, dict):
            raise bad_request(f"`{param}.function.arguments` must be a JSON object.", param=param)
        call_id = call.get("id") or ""
        if call_id:
            call_names[call_id] = fn["name"]
        converted.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": fn["name"], "arguments": arguments},
            }
        )
    return converted
