"""Whether long media fits one prompt: pure functions of token counts.

The budget is what the memory plan's context leaves: `PromptBudget(context_tokens,
used_tokens, reserve_tokens)`, where `context_tokens` is the plan's context length (the
engine's `context_limit`), `used_tokens` the conversation and the user's request so far,
and `reserve_tokens` room for the answer. Token counts of media come from the checkpoint's
processor config (samples per token, clip length, per-frame budgets), never constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

AUDIO_MARKER_TOKENS = 2  # <|audio> ... <audio|> around each clip's soft tokens


@dataclass(frozen=True)
class PromptBudget:
    """Tokens the plan's context has left for a message's media or documents."""

    context_tokens: int
    used_tokens: int = 0
    reserve_tokens: int = 1024

    @property
    def available(self) -> int:
        return max(0, self.context_tokens - self.used_tokens - self.reserve_tokens)


def clip_tokens(samples: int, samples_per_token: int) -> int:
    """Audio soft tokens of one clip of `samples` (the last frame is zero-padded)."""
    return math.ceil(samples / samples_per_token)


def recording_tokens(
    duration_s: float,
    *,
    clip_seconds: float,
    sampling_rate: int,
    samples_per_token: int,
    label_tokens: int = 4,
) -> int:
    """Prompt tokens of a recording sent whole: per clip, its start time as text, the
    markers and its soft tokens (`label_tokens`: the tokenizer's count for a time like `12:30`
    and the separator)."""
    total_samples = math.ceil(duration_s * sampling_rate)
    clip_samples = int(round(clip_seconds * sampling_rate))
    full, last = divmod(total_samples, clip_samples)
    tokens = full * clip_tokens(clip_samples, samples_per_token)
    clips = full
    if last:
        tokens += clip_tokens(last, samples_per_token)
        clips += 1
    return tokens + max(clips, 1) * (AUDIO_MARKER_TOKENS + label_tokens)


@dataclass(frozen=True)
class Decision:
    """What to do with media or text of `needed` tokens when `available` are left."""

    mode: Literal["prompt", "transcribe", "whole", "map_reduce"]
    needed: int
    available: int

    @property
    def fits(self) -> bool:
        return self.needed <= self.available


def decide_recording(audio_tokens: int, budget: PromptBudget) -> Decision:
    """ "prompt" (the clips go in as audio) when they fit, else "transcribe" first."""
    mode = "prompt" if audio_tokens <= budget.available else "transcribe"
    return Decision(mode, audio_tokens, budget.available)


def decide_transcript(transcript_tokens: int, budget: PromptBudget) -> Decision:
    """ "whole" (one request over the transcript) when it fits, else "map_reduce" over parts."""
    mode = "whole" if transcript_tokens <= budget.available else "map_reduce"
    return Decision(mode, transcript_tokens, budget.available)
