"""Legacy `/v1/completions`: a prompt in, `text_completion` objects out (whole or SSE chunks).

Gemma 4 is a chat model, so the prompt is one user message through the chat template
(as Ollama's `/api/generate` does); `echo`, `suffix`, `logprobs` and `best_of` > 1 are
refused. `max_tokens` defaults to 16, as OpenAI's endpoint does. The sampling fields and
extras are chat completions' (`app.server.chat_request`); thoughts are not part of a
completion's text.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.engines.contract import Finished, GenerationStats, TextDelta
from app.server.chat_request import (
    ChatRequest,
    build_options,
    cache_key_of,
    max_tokens_into,
    parse_messages,
    refuse_unsupported,
    require_bool,
    require_model,
    require_object,
    response_format_of,
    sampling_values,
    stop_list,
    thinking_of,
    unknown_fields,
)
from app.server.completions import finish_reason, sse, usage_json
from app.server.config import ServerConfig
from app.server.errors import bad_request

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
_FIELDS = frozenset(
    {
        "model", "prompt", "stream", "stream_options", "max_tokens", "n_predict", "temperature",
        "top_p", "top_k", "min_p", "repetition_penalty", "repeat_penalty", "stop", "seed", "n",
        "best_of", "echo", "suffix", "logprobs", "response_format", "guided_json",
        "json_schema", "reasoning_effort", "reasoning", "chat_template_kwargs",
        "enable_thinking", "prompt_cache_key", "guided_regex", "guided_choice",
        "guided_grammar", "grammar",
    }
)  # fmt: skip


def parse_request(body: Any, config: ServerConfig) -> ChatRequest:
    """A `ChatRequest` from a `/v1/completions` body (400 naming the field at fault)."""
    body = require_object(body)
    model = require_model(body)
    refuse_unsupported(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request(
            "`prompt` must be a string (or a list of one string; token ids are not taken).",
            param="prompt",
        )
    stream = require_bool(body, "stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise bad_request("`stream_options` must be an object.", param="stream_options")
    values = sampling_values(body)
    param = max_tokens_into(values, body, ("max_tokens", "n_predict"))
    if param is None:
        values["max_tokens"] = DEFAULT_MAX_TOKENS
        param = "max_tokens"
    if body.get("stop") is not None:
        values["stop"] = stop_list(body["stop"])
    values["enable_thinking"] = thinking_of(body)
    values["response_format"] = response_format_of(body)
    options = build_options(values, {"max_tokens": param})
    messages = parse_messages([{"role": "user", "content": prompt}], config)
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        options=options,
        conversation_id=cache_key_of(body),
        max_tokens_param=param,
        ignored=unknown_fields(body, _FIELDS),
    )


def writer(chat: ChatRequest, model: str) -> TextCompletionWriter:
    return TextCompletionWriter(model, chat.include_usage)


class TextCompletionWriter:
    """`Writer` for `/v1/completions`: one `text_completion`, or its SSE chunks."""

    media_type = "text/event-stream"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.text: list[str] = []
        self.stats: GenerationStats | None = None

    def _object(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def add(self, event: Any) -> None:
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, Finished):
            self.stats = event.stats

    def body(self) -> dict[str, Any]:
        choice = {
            "text": "".join(self.text),
            "index": 0,
            "logprobs": None,
            "finish_reason": finish_reason(self.stats, False),
        }
        return self._object([choice], usage=usage_json(self.stats))

    def stream_start(self) -> bytes:
        return b""

    def stream_event(self, event: Any) -> bytes | None:
        if isinstance(event, Finished):
            self.stats = event.stats
        if not isinstance(event, TextDelta) or not event.text:
            return None
        choice = {"text": event.text, "index": 0, "logprobs": None, "finish_reason": None}
        return sse(self._object([choice]))

    def stream_end(self) -> bytes:
        choice = {
            "text": "",
            "index": 0,
            "logprobs": None,
            "finish_reason": finish_reason(self.stats, False),
        }
        out = sse(self._object([choice]))
        if self.include_usage:
            out += sse(self._object([], usage=usage_json(self.stats)))
        return out + b"data: [DONE]\n\n"

    def stream_error(self, error: Any) -> bytes:
        return sse(error.body()) + b"data: [DONE]\n\n"
