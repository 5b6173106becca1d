"""The engine contract: what the app asks of a model, local (MLX) or remote (OpenAI-compatible).

An `Engine` streams one model turn: `stream(messages, tools=schemas, options=...,
conversation_id=...)` yields the model library's events (`PrefillProgress`, `TextDelta`,
`ThinkingDelta`, `ToolCallEvent`, then one `Finished` with `GenerationStats` or one
`GenerationError`) and stops at a tool call, running nothing. The agent loop
(`app.engines.agent`) runs the tools and asks again; it adds `ToolResultEvent`s to the
stream. Both engines take the same `app.options.GenerationOptions` unchanged; an option an
engine cannot apply is refused by name with a `GenerationError` of kind "unsupported".

Which engine to open is an `EngineSpec`: `LocalModel(path, ...)` or `RemoteModel(url, ...)`;
an `EngineFactory(spec, progress)` opens one (`app.engines.factory.open_engine` by default). `info()` tells the
app what it needs to show (name, where, context limit, precision) as typed fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from app.options import GenerationOptions
from mlx_model.events import (
    EngineEvent,
    Finished,
    GenerationError,
    GenerationStats,
    PrefillProgress,
    StopReason,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    TurnResult,
)

ProgressCallback = Callable[[float, str], None]  # (fraction 0..1, what is happening)


@dataclass(frozen=True)
class ToolResultEvent:
    """The agent loop ran a tool call; `result` went back to the model (or `error` did)."""

    call: ToolCall
    result: Any = None
    error: str | None = None


Event = EngineEvent | ToolResultEvent  # what a generation (the agent loop) yields


@dataclass(frozen=True)
class LocalModel:
    """A checkpoint folder run here by MLX (`tuning`: extra `Engine.load` keywords)."""

    path: str
    bits: int | None = None  # quantize on load to 4 or 8 bits; None keeps the stored weights
    context_length: int | None = None
    kv_bits: int | None = None
    tuning: Mapping[str, Any] = field(default_factory=dict)
    use_checkpoint_template: bool = False  # keep an outdated Gemma 4 chat template as shipped
    # Speculative decoding: with `speculative`, the drafter `draft_model` (a folder or a cached
    # repo id; it must load) or, when "", one found beside the model or in the cache (used
    # when it fits).
    speculative: bool = True
    draft_model: str = ""

    @property
    def source(self) -> str:
        return self.path


@dataclass(frozen=True)
class RemoteModel:
    """A model served by an OpenAI-compatible server (`model` "": the first one it lists)."""

    url: str
    model: str = ""
    api_key: str = ""
    check: bool = True  # ask the server for its models when connecting

    @property
    def source(self) -> str:
        return self.url


EngineSpec = LocalModel | RemoteModel


@dataclass(frozen=True)
class EngineInfo:
    """What the app shows about a loaded engine."""

    kind: Literal["local", "remote"]
    source: str  # the checkpoint folder or the server's URL
    name: str  # the model's name
    context_limit: int = 0  # 0: unknown
    precision: str = ""  # "4-bit", "bf16", ... ("" when unknown)
    plan: Any = None  # the local engine's `mlx_model.memory_plan.MemoryPlan`
    drafter: str = ""  # the speculative drafter's name, when one is loaded
    notices: tuple[str, ...] = ()  # what the user should be told about this load


class Engine(Protocol):
    """A model the app can stream turns from; see the module docstring."""

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        options: GenerationOptions,
        conversation_id: str | None = None,
    ) -> Iterator[EngineEvent]: ...

    def cancel(self) -> None: ...

    def drop_caches(self) -> int:
        """Free what the engine keeps between turns (prompt caches); the bytes freed."""
        ...

    def info(self) -> EngineInfo: ...

    def close(self) -> None: ...


EngineFactory = Callable[[EngineSpec, ProgressCallback | None], Engine]


def model_name(source: str) -> str:
    """A model's display name from its folder ("models--google--gemma-4" -> "gemma-4")."""
    name = Path(source).name.replace("--", "/")
    return name.split("/")[-1] or source


__all__ = [
    "Engine",
    "EngineEvent",
    "EngineFactory",
    "EngineInfo",
    "EngineSpec",
    "Event",
    "Finished",
    "GenerationError",
    "GenerationStats",
    "LocalModel",
    "PrefillProgress",
    "ProgressCallback",
    "RemoteModel",
    "StopReason",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolResultEvent",
    "TurnResult",
    "model_name",
]
