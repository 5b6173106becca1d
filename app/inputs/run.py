"""Preparing long inputs with a loaded engine: the helper generations run on that engine.

The engine service calls `prepare_for_engine` on its own thread before the agent loop
when a generation's messages hold a long input (`needs_preparation`): transcribing a clip,
describing a video segment or reading a part of a long transcript is one short greedy
turn of the same engine (its own prompt cache slot, so the conversation's stays warm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.engines.contract import Engine, Finished, GenerationError, TextDelta
from app.errors import AppError
from app.inputs.events import InputEvent
from app.inputs.facts import facts_of
from app.inputs.prepare import Prepared, needs_preparation, prepare_messages
from app.options import GenerationOptions
from app.recordings import StopTranscription

HELPER_CACHE_ID = "gemma-desk:long-inputs"


@dataclass(frozen=True)
class InputContext:
    """What the conversation knows that preparing needs: transcripts made before
    (media hash -> `Transcript.to_dict()`)."""

    transcripts: Mapping[str, dict[str, Any]] = field(default_factory=dict)


def engine_text(
    engine: Engine, messages: list[dict[str, Any]], max_tokens: int, *, seed: int | None = None
) -> str:
    """One short greedy turn's text; `StopTranscription` when it was cancelled mid-way."""
    options = GenerationOptions(max_tokens=max(1, max_tokens), temperature=0.0, seed=seed)
    text: list[str] = []
    for event in engine.stream(messages, options=options, conversation_id=HELPER_CACHE_ID):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, GenerationError):
            raise AppError(event.kind, event.message)
        elif isinstance(event, Finished) and event.stats.stop_reason == "cancelled":
            raise StopTranscription
    return "".join(text)


def prepare_for_engine(
    engine: Engine,
    messages: Sequence[dict[str, Any]],
    *,
    options: GenerationOptions,
    tools: Any = None,
    inputs: InputContext | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    emit: Callable[[InputEvent], None] = lambda event: None,
) -> Prepared:
    """The messages the engine can take (see `app.inputs.prepare`)."""
    facts = facts_of(engine)
    if not needs_preparation(messages, facts):
        return Prepared(list(messages))

    def generate(chat: list[dict[str, Any]], max_tokens: int) -> str:
        if cancelled():
            raise StopTranscription
        return engine_text(engine, chat, max_tokens, seed=options.seed)

    return prepare_messages(
        messages,
        facts,
        generate=generate,
        emit=emit,
        max_tokens=options.max_tokens,
        image_budget=options.image_budget,
        tools=_schemas(tools),
        transcripts=(inputs or InputContext()).transcripts,
        cancelled=cancelled,
    )


def _schemas(tools: Any) -> Sequence[dict[str, Any]] | None:
    """The JSON schemas the model is offered (they take context too)."""
    from app.engines.agent import resolve_tools

    try:
        return resolve_tools(tools)[1]
    except AppError:  # the agent loop reports it
        return None
