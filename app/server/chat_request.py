"""Parse and check a `/v1/chat/completions` body into a `ChatRequest` for the engine service.

The messages are converted by `app.messages.from_openai_messages`; images and audio clips
are measured from their headers and counted against the server's media budget
(`PendingImage` / `PendingAudio`, handed to the engine by `app.server.media.prepare_media`
when the request's turn comes). The sampling fields become one `app.options.GenerationOptions`,
whose limits are the app's single set. Beyond OpenAI's fields the server takes the extras
vLLM and llama.cpp take (`top_k`, `min_p`, `repetition_penalty`, `chat_template_kwargs`,
`mm_processor_kwargs.max_soft_tokens` for the image budget) and `prompt_cache_key`, which
picks the prompt cache. Every problem is a 400 (or 413) naming the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.errors import AppError
from app.media_budget import BudgetTally
from app.messages import from_openai_messages
from app.options import GenerationOptions, OptionError
from app.server.config import ServerConfig
from app.server.errors import APIError, bad_request
from app.server.media import load_audio, load_image

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
    "verbosity",
}
_KNOWN = {
    "model", "messages", "stream", "stream_options", "tools", "tool_choice", "temperature",
    "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens", "max_completion_tokens",
    "stop", "seed", "n", "response_format", "logprobs", "top_logprobs", "reasoning_effort",
    "chat_template_kwargs", "mm_processor_kwargs", "enable_thinking", "functions",
    "function_call", "prompt_cache_key",
} | _IGNORED  # fmt: skip
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed")


@dataclass
class ChatRequest:
    """One checked chat request."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    tools: list[dict[str, Any]] | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    conversation_id: str | None = None  # `prompt_cache_key`: which prompt cache to use

    @property
    def enable_thinking(self) -> bool:
        return self.options.enable_thinking


def parse_chat_request(
    body: Any, config: ServerConfig, *, max_clip_s: float | None = None
) -> ChatRequest:
    """A `ChatRequest` from the decoded JSON body, or `APIError` (400/413) saying what is wrong.

    Media are measured, not decoded; `max_clip_s` is the model's limit per audio clip.
    """
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
    unknown = sorted(set(body) - _KNOWN)
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
    cache_key = body.get("prompt_cache_key")
    if cache_key is not None and (not isinstance(cache_key, str) or len(cache_key) > 256):
        raise bad_request("`prompt_cache_key` must be a string.", param="prompt_cache_key")

    options = _options(body, config)
    tools = _parse_tools(body.get("tools"), body.get("tool_choice"))
    tally = config.media_budget.tally()
    try:
        messages = _parse_messages(body.get("messages"), config, tally, max_clip_s)
    except AppError as exc:
        raise APIError(400, str(exc), param=exc.param) from exc
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        tools=tools,
        options=options,
        conversation_id=cache_key or None,
    )


def _options(body: dict[str, Any], config: ServerConfig) -> GenerationOptions:
    """The request's `GenerationOptions` (its fields under their wire names)."""
    values: dict[str, Any] = {k: body[k] for k in _SAMPLING if body.get(k) is not None}
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = body.get(name)
    if max_tokens is not None:
        if type(max_tokens) is int and max_tokens > config.max_tokens_limit:
            raise bad_request(
                f"`{name}` must be at most {config.max_tokens_limit} on this server; "
                f"got {max_tokens}.",
                param=name,
            )
        values["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        values["stop"] = (stop,) if isinstance(stop, str) else stop
        if not isinstance(values["stop"], list | tuple):
            raise bad_request(
                "`stop` must be a non-empty string or a list of up to 16 of them.", param="stop"
            )
    values["enable_thinking"] = _thinking(body)
    processor_kwargs = body.get("mm_processor_kwargs") or {}
    if not isinstance(processor_kwargs, dict):
        raise bad_request("`mm_processor_kwargs` must be an object.", param="mm_processor_kwargs")
    if processor_kwargs.get("max_soft_tokens") is not None:
        values["image_budget"] = processor_kwargs["max_soft_tokens"]
    try:
        return GenerationOptions(**values)
    except OptionError as exc:
        param = {"max_tokens": name, "image_budget": "mm_processor_kwargs"}.get(exc.name, exc.name)
        raise bad_request(f"`{param}`: {exc}", param=param) from exc
    except TypeError as exc:
        raise bad_request(str(exc)) from exc


def _thinking(body: dict[str, Any]) -> Any:
    """The requested thinking switch (checked to be a boolean by `GenerationOptions`)."""
    enable_thinking: Any = False
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
        enable_thinking = kwargs["enable_thinking"]
    if "enable_thinking" in body:
        enable_thinking = body["enable_thinking"]
    return enable_thinking


def _parse_messages(
    messages: Any, config: ServerConfig, tally: BudgetTally, max_clip_s: float | None
) -> list[dict[str, Any]]:
    if isinstance(messages, list) and len(messages) > config.max_messages:
        raise APIError(413, f"More than {config.max_messages} messages.", param="messages")

    def image(url: str, param: str) -> Any:
        return load_image(
            url,
            param=param,
            max_bytes=config.max_media_bytes,
            allowed_folders=config.allowed_folders,
            tally=tally,
        )

    def audio(part: Any, param: str) -> Any:
        return load_audio(
            part, param=param, max_bytes=config.max_media_bytes, tally=tally, max_clip_s=max_clip_s
        )

    return from_openai_messages(messages, image=image, audio=audio)


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
