"""Typed events streamed by `Engine.stream`: what the app, the CLI and the server consume.

One model turn yields, in order: `PrefillProgress` events (for a long prompt), then any mix of
`ThinkingDelta`, `TextDelta` and `ToolCallEvent`, and finally exactly one `Finished`
(carrying `GenerationStats`) or one `GenerationError`. A turn that ends in tool calls
has stop reason "tool_call"; running them is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

StopReason = Literal["end_of_turn", "eos", "tool_call", "length", "cancelled", "stop_string"]

# What a turn may ask for; the app's options take these too (one set of defaults).
ContextPolicy = Literal["error", "drop_oldest"]
CONTEXT_POLICIES: tuple[str, ...] = ("error", "drop_oldest")
DEFAULT_MAX_TOKENS = 4096  # an answer's length when the caller names none


@dataclass(frozen=True)
class PrefillProgress:
    """Prefill of a long prompt advanced: `done` of `total` prompt tokens are in the cache.

    `eta_s`: the estimated seconds until the whole prompt is in (None before there is an
    estimate); `elapsed_s`: seconds since this prefill began.
    """

    done: int
    total: int
    eta_s: float | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class TextDelta:
    """New answer text (already detokenized; never splits a character)."""

    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    """New text of the model's thinking channel (`<|channel>thought ... <channel|>`)."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A complete function call the model asked for."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True)
class ToolCallEvent:
    """The model emitted a complete tool call."""

    call: ToolCall


@dataclass
class GenerationStats:
    """Numbers for one `stream` call; the last event carries them."""

    prefilled_tokens: int = 0  # prompt tokens actually run through prefill in this call
    cached_tokens: int = 0  # prompt tokens reused from the prompt cache
    generated_tokens: int = 0
    context_tokens: int = 0  # tokens in the context after generation
    context_limit: int = 0
    ttft_s: float = 0.0
    prefill_tps: float = 0.0
    decode_tps: float = 0.0
    peak_memory_bytes: int = 0
    stop_reason: StopReason = "eos"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    """Generation ended normally (or was cancelled); `stats.stop_reason` says why."""

    stats: GenerationStats
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class GenerationError:
    """Generation failed; `kind` is a stable machine-readable category, `message` is for people."""

    kind: str  # e.g. "context_overflow", "media", "memory", "cancelled", "internal"
    message: str


EngineEvent = (
    PrefillProgress | TextDelta | ThinkingDelta | ToolCallEvent | Finished | GenerationError
)


@dataclass
class TurnResult:
    """Everything one `Engine.stream` produced, collected (what `Engine.generate` returns)."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    stats: GenerationStats | None = None
    error: GenerationError | None = None
    events: list[Any] = field(default_factory=list)

    def add(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, TextDelta):
            self.text += event.text
        elif isinstance(event, ThinkingDelta):
            self.thinking += event.text
        elif isinstance(event, ToolCallEvent):
            self.tool_calls.append(event.call)
        elif isinstance(event, Finished):
            self.stats = event.stats
            self.token_ids = list(event.token_ids)
        elif isinstance(event, GenerationError):
            self.error = event
