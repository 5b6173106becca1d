"""Engine events to OpenAI chat-completion objects: the whole answer, or SSE chunks as they come.

`Writer` is what every endpoint's answer shape implements (chat completions here; the
Responses API, legacy completions and Ollama's API in their modules): the server's one
generation path collects events into `body()` or streams them, whatever the API.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.engines.contract import (
    Finished,
    GenerationStats,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
    TurnResult,
)
from app.messages import openai_tool_call

_FINISH_REASONS = {
    "end_of_turn": "stop",
    "eos": "stop",
    "stop_string": "stop",
    "tool_call": "tool_calls",
    "length": "length",
    "cancelled": "stop",
}


class Writer(Protocol):
    """One request's answer in its API's shape: collected (`add`, then `body`) or streamed
    (`stream_start`, `stream_event` for each event, `stream_end`; `stream_error` ends a
    stream that failed after it started)."""

    media_type: str  # of the streamed body

    def add(self, event: Any) -> None: ...

    def body(self) -> dict[str, Any]: ...

    def stream_start(self) -> bytes: ...

    def stream_event(self, event: Any) -> bytes | None: ...

    def stream_end(self) -> bytes: ...

    def stream_error(self, error: Any) -> bytes: ...


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_json(stats: GenerationStats | None) -> dict[str, Any]:
    """OpenAI's `usage`; with speculative decoding also OpenAI's predicted-output counts
    (`completion_tokens_details`) and our extension `speculative` (docs/SERVER.md)."""
    if stats is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    prompt = stats.prefilled_tokens + stats.cached_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": prompt + stats.generated_tokens,
    }
    if stats.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": stats.cached_tokens}
    drafting = stats.extra.get("speculative")
    if drafting:
        drafted, accepted = int(drafting.get("drafted", 0)), int(drafting.get("accepted", 0))
        usage["completion_tokens_details"] = {
            "accepted_prediction_tokens": accepted,
            "rejected_prediction_tokens": drafted - accepted,
        }
        usage["speculative"] = {
            "drafted_tokens": drafted,
            "accepted_tokens": accepted,
            "acceptance_rate": float(drafting.get("acceptance_rate", 0.0)),
            "mean_accepted_length": float(drafting.get("mean_accepted_length", 0.0)),
            "decode_tokens_per_second": round(stats.decode_tps, 2),
        }
    return usage


def finish_reason(stats: GenerationStats | None, had_tool_calls: bool) -> str:
    if had_tool_calls:
        return "tool_calls"
    return _FINISH_REASONS.get(stats.stop_reason if stats else "eos", "stop")


@dataclass
class Completion:
    """Collects one generation's events into a non-streamed `chat.completion`."""

    model: str
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    turn: TurnResult = field(default_factory=TurnResult)

    def add(self, event: Any) -> None:
        self.turn.add(event)

    def json(self) -> dict[str, Any]:
        turn = self.turn
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
        if turn.thinking:
            message["reasoning_content"] = turn.thinking
        if turn.tool_calls:
            message["tool_calls"] = [openai_tool_call(c) for c in turn.tool_calls]
        elif message["content"] is None:
            message["content"] = ""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason(turn.stats, bool(turn.tool_calls)),
                    "logprobs": None,
                }
            ],
            "usage": usage_json(turn.stats),
        }


@dataclass
class ChunkWriter:
    """Turns events into `chat.completion.chunk` SSE lines for one streamed completion."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    tool_calls: int = 0
    stats: GenerationStats | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return sse(body)

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def event(self, event: Any) -> bytes | None:
        """The SSE data for one engine event (None for events clients do not see)."""
        if isinstance(event, TextDelta) and event.text:
            return self._chunk({"content": event.text})
        if isinstance(event, ThinkingDelta) and event.text:
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, ToolCallEvent):
            index, self.tool_calls = self.tool_calls, self.tool_calls + 1
            return self._chunk({"tool_calls": [openai_tool_call(event.call, index)]})
        if isinstance(event, Finished):
            self.stats = event.stats
        return None

    def finish(self) -> bytes:
        out = self._chunk({}, finish_reason(self.stats, self.tool_calls > 0))
        if self.include_usage:
            out += sse(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_json(self.stats),
                }
            )
        return out + b"data: [DONE]\n\n"


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


class ChatWriter:
    """`Writer` for `/v1/chat/completions`: a `chat.completion` or its SSE chunks."""

    media_type = "text/event-stream"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.completion = Completion(model)
        self.chunks = ChunkWriter(model, include_usage=include_usage)

    def add(self, event: Any) -> None:
        self.completion.add(event)

    def body(self) -> dict[str, Any]:
        return self.completion.json()

    def stream_start(self) -> bytes:
        return self.chunks.start()

    def stream_event(self, event: Any) -> bytes | None:
        return self.chunks.event(event)

    def stream_end(self) -> bytes:
        return self.chunks.finish()

    def stream_error(self, error: Any) -> bytes:
        return sse(error.body()) + b"data: [DONE]\n\n"
