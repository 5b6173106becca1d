"""The agent loop: model turns and tool runs until the model answers, for any engine.

`run_agent(engine, messages, tools=..., options=...)` streams one model turn; when it ends
in tool calls and the tools are executable (a `ToolRegistry`, or typed functions), it runs
them (validated against their schemas; several calls of one turn in parallel), yields a
`ToolResultEvent` for each, appends the assistant message and the tool messages to the
conversation and asks the model again, up to the registry's step limit (a forced
`tool_choice` forces the first turn's call only; later turns choose freely). Plain JSON
schemas are offered to the model but not run: a call then ends the generation with stop
reason "tool_call" for the caller (the HTTP server's client) to run.

Each result is capped before it enters the prompt, saying so in the text the model reads:
in characters by the registry (`ToolRegistry.max_result_chars`), then in tokens
(`max_result_tokens`: a quarter of the context, at most 16,384), counted by the engine's
tokenizer where it has one (`cut_to_tokens`, the local engine) and estimated at
`CHARS_PER_TOKEN` otherwise (a remote server's tokenizer is not known here).

The events are the engine's, plus the tool results; the one `Finished` at the end carries
the whole generation's stats (summed over the turns; per-turn numbers in
`stats.extra["turns"]`). `AgentResult.collect(events)` gathers a finished stream.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.engines.contract import (
    Engine,
    Event,
    Finished,
    GenerationError,
    GenerationStats,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
)
from app.errors import AppError, ErrorKind
from app.messages import assistant_message, tool_message
from app.options import DEFAULTS, GenerationOptions
from app.tools.registry import Tool, ToolRegistry, ToolResult, tool_from_function, truncation_note
from mlx_model.events import TurnResult

Tools = ToolRegistry | Sequence[Tool | Callable[..., Any] | dict[str, Any]]
CHARS_PER_TOKEN = 4  # the estimate for an engine that cannot count tokens


def max_result_tokens(context_limit: int) -> int:
    """How many tokens one tool result may put into the prompt: a huge result ends as a
    note, not as a next turn that cannot fit (an unknown context: 16,384)."""
    return max(256, min(16_384, context_limit // 4)) if context_limit > 0 else 16_384


def cap_tool_result(result: ToolResult, engine: Any, max_tokens: int) -> ToolResult:
    """`result` with its response cut to `max_tokens` tokens, saying so, when longer."""
    value = result.error if result.error is not None else result.result
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    cut = getattr(engine, "cut_to_tokens", None)
    if cut is not None:
        kept = cut(text, max_tokens)
        if kept is None:
            return result
        capped = kept[0] + truncation_note(kept[1], max_tokens, "tokens")
    else:
        max_chars = max_tokens * CHARS_PER_TOKEN
        if len(text) <= max_chars:
            return result
        capped = text[:max_chars] + truncation_note(len(text), max_chars, "characters")
    if result.error is not None:
        return dataclasses.replace(result, error=capped)
    return dataclasses.replace(result, result=capped)


def resolve_tools(tools: Tools | None) -> tuple[ToolRegistry | None, list[dict[str, Any]] | None]:
    """(the registry that runs calls, or None; the schemas offered to the model, or None)."""
    if tools is None:
        return None, None
    if isinstance(tools, ToolRegistry):
        return (tools, tools.schemas()) if len(tools) else (None, None)
    items = list(tools)
    if not items:
        return None, None
    if all(isinstance(t, dict) for t in items):
        return None, items
    if any(isinstance(t, dict) for t in items):
        raise AppError(
            ErrorKind.INVALID_REQUEST, "mix of executable tools and plain schemas is not supported"
        )
    registry = ToolRegistry()
    for item in items:
        registry.register(item if isinstance(item, Tool) else tool_from_function(item))
    return registry, registry.schemas()


@dataclass
class _Turn:
    text: str = ""
    thinking: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    finished: Finished | None = None


def run_agent(
    engine: Engine,
    messages: Sequence[dict[str, Any]],
    *,
    tools: Tools | None = None,
    options: GenerationOptions = DEFAULTS,
    conversation_id: str | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Stream a whole generation; see the module docstring. `cancelled()` is asked between
    turns (the engine's own `cancel` stops a running turn)."""
    started = time.perf_counter()
    try:
        registry, schemas = resolve_tools(tools)
    except AppError as exc:
        yield GenerationError(exc.kind, str(exc))
        return
    conversation = list(messages)
    turns: list[GenerationStats] = []
    tokens: list[int] = []
    steps = 0
    limit_reached = False
    result_tokens: int | None = None
    while True:
        remaining = options.max_tokens - sum(t.generated_tokens for t in turns)
        turn_options = options.replace(max_tokens=remaining)
        if turns and options.forces_tool_call:
            turn_options = turn_options.replace(tool_choice="auto")  # forced once: the first turn
        turn = _Turn()
        for event in engine.stream(
            conversation,
            tools=schemas,
            options=turn_options,
            conversation_id=conversation_id,
        ):
            if isinstance(event, GenerationError):
                yield event
                return
            if isinstance(event, Finished):
                turn.finished = event
                continue
            if isinstance(event, TextDelta):
                turn.text += event.text
            elif isinstance(event, ThinkingDelta):
                turn.thinking += event.text
            elif isinstance(event, ToolCallEvent):
                turn.calls.append(event.call)
            yield event
        if turn.finished is None:
            yield GenerationError("internal", "the engine's turn ended without a Finished event")
            return
        stats = turn.finished.stats
        turns.append(stats)
        tokens.extend(turn.finished.token_ids)
        if stats.stop_reason != "tool_call" or registry is None or not turn.calls:
            break
        if stats.generated_tokens >= remaining:
            limit_reached = True
            break
        steps += 1
        if steps > registry.max_steps:
            break
        if result_tokens is None:
            result_tokens = max_result_tokens(engine.info().context_limit)
        results = [
            cap_tool_result(r, engine, result_tokens) for r in registry.execute_all(turn.calls)
        ]
        conversation.append(assistant_message(turn.text, turn.thinking, turn.calls))
        for result in results:
            yield ToolResultEvent(call=result.call, result=result.result, error=result.error)
            conversation.append(tool_message(result.call, result.result, result.error))
        if cancelled():
            turns[-1].stop_reason = "cancelled"
            break
    total = combine(turns, time.perf_counter() - started)
    total.extra["tool_steps"] = min(steps, registry.max_steps) if registry else 0
    if registry is not None and steps > registry.max_steps:
        total.extra["tool_step_limit"] = registry.max_steps
    if limit_reached:
        total.stop_reason = "length"
    yield Finished(stats=total, token_ids=tuple(tokens))


def combine(turns: Sequence[GenerationStats], elapsed_s: float = 0.0) -> GenerationStats:
    """One generation's stats from its turns': counts summed, the last turn's stop reason and
    context, the first turn's time to first token."""
    total = GenerationStats()
    if not turns:
        return total
    first, last = turns[0], turns[-1]
    for name in ("prefilled_tokens", "cached_tokens", "generated_tokens"):
        setattr(total, name, sum(getattr(t, name) for t in turns))
    total.context_tokens = last.context_tokens
    total.context_limit = last.context_limit
    total.stop_reason = last.stop_reason
    total.ttft_s = first.ttft_s
    total.peak_memory_bytes = max(t.peak_memory_bytes for t in turns)
    prefill_s = sum(t.extra.get("prefill_s", 0.0) for t in turns)
    decode_s = sum(t.extra.get("decode_s", 0.0) for t in turns)
    total.prefill_tps = total.prefilled_tokens / prefill_s if prefill_s > 0 else first.prefill_tps
    decoded = sum(max(t.generated_tokens - 1, 0) for t in turns)
    total.decode_tps = decoded / decode_s if decode_s > 0 else 0.0
    for key, value in last.extra.items():
        total.extra.setdefault(key, value)
    total.extra.update(prefill_s=prefill_s, decode_s=decode_s, elapsed_s=elapsed_s)
    drafting = [t.extra["speculative"] for t in turns if "speculative" in t.extra]
    if drafting:
        total.extra["speculative"] = combine_drafting(drafting)
    if len(turns) > 1:
        total.extra["turns"] = [_turn_numbers(t) for t in turns]
    return total


def combine_drafting(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Speculative decoding's counts over several turns (`stats.extra["speculative"]`)."""
    total: dict[str, Any] = {
        name: sum(int(t.get(name, 0)) for t in turns)
        for name in ("drafted", "accepted", "rounds", "plain_steps")
    }
    total["acceptance_rate"] = (
        round(total["accepted"] / total["drafted"], 4) if total["drafted"] else 0.0
    )
    total["mean_accepted_length"] = (
        round(total["accepted"] / total["rounds"], 4) if total["rounds"] else 0.0
    )
    lengths: dict[str, int] = {}
    for turn in turns:
        for k, count in (turn.get("draft_lengths") or {}).items():
            lengths[str(k)] = lengths.get(str(k), 0) + int(count)
    total["draft_lengths"] = dict(sorted(lengths.items()))
    return total


def _turn_numbers(stats: GenerationStats) -> dict[str, Any]:
    return {
        "prefilled_tokens": stats.prefilled_tokens,
        "cached_tokens": stats.cached_tokens,
        "generated_tokens": stats.generated_tokens,
        "stop_reason": stats.stop_reason,
    }


@dataclass
class AgentResult(TurnResult):
    """A finished generation, collected: text, thinking, calls, results, stats or error."""

    tool_results: list[ToolResultEvent] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, ToolResultEvent):
            self.events.append(event)
            self.tool_results.append(event)
        else:
            super().add(event)

    @classmethod
    def collect(cls, events: Iterable[Event]) -> AgentResult:
        result = cls()
        for event in events:
            result.add(event)
        return result
