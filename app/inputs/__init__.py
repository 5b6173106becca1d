"""Long inputs for the model: documents, long recordings and long videos, decided against what
the plan's context leaves (fit or retrieve, fit or transcribe, fit or describe) and prepared
on the engine's thread; their progress and transcripts travel as `app.inputs.events`."""

from .events import (
    INPUT_EVENTS,
    InputEvent,
    InputNote,
    InputProgress,
    TranscriptFinished,
    TranscriptLine,
    TranscriptStarted,
)
from .facts import ModelFacts, estimate_tokens, facts_of
from .prepare import Prepared, needs_preparation, prepare_messages

__all__ = [
    "INPUT_EVENTS",
    "InputEvent",
    "InputNote",
    "InputProgress",
    "ModelFacts",
    "Prepared",
    "TranscriptFinished",
    "TranscriptLine",
    "TranscriptStarted",
    "estimate_tokens",
    "facts_of",
    "needs_preparation",
    "prepare_messages",
]
