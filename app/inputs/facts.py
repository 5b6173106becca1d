"""What deciding about long inputs needs to know of the model: its context, how it counts
tokens, and its processor config (clip length, samples per audio token, frame budgets).

For the local model these are exact: the memory plan's context, the checkpoint's tokenizer
and processor config. A remote server says neither how it tokenizes nor (often) its context,
so text is counted at a conservative 3.5 characters per token and the context defaults to
`REMOTE_CONTEXT`; the media arithmetic uses Gemma 4's reference processor config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.documents import TokenCounter, token_counter
from mlx_model.processing import ProcessorConfig

REMOTE_CONTEXT = 32_768
CHARS_PER_TOKEN = 3.5


def estimate_tokens(text: str) -> int:
    """A count that is rarely below a Gemma tokenizer's (for servers that do not tell)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ModelFacts:
    """See the module docstring."""

    context_limit: int
    count: TokenCounter
    config: ProcessorConfig
    exact: bool = True  # counts from the model's own tokenizer
    processor: Any = None  # the local model's `mlx_model.processing.Processor` (renders prompts)

    @classmethod
    def from_processor(cls, processor: Any, context_limit: int) -> ModelFacts:
        return cls(
            int(context_limit),
            token_counter(processor.tokenizer),
            processor.config,
            True,
            processor,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, context_limit: int) -> ModelFacts:
        """Facts of a checkpoint folder without loading its weights (`--print-prompt`)."""
        from mlx_model.processing import Processor

        return cls.from_processor(Processor.from_pretrained(path), context_limit)

    @classmethod
    def estimated(cls, context_limit: int = 0) -> ModelFacts:
        return cls(context_limit or REMOTE_CONTEXT, estimate_tokens, ProcessorConfig(), False)


def facts_of(engine: Any) -> ModelFacts:
    """The facts of a loaded engine: exact for the local model, estimated for a remote one."""
    inner = getattr(engine, "engine", None)  # the local engine's `mlx_model.engine.Engine`
    processor = getattr(inner, "processor", None)
    if processor is not None and getattr(processor, "tokenizer", None) is not None:
        return ModelFacts.from_processor(processor, int(inner.context_limit))
    try:
        context = int(engine.info().context_limit or 0)
    except Exception:  # noqa: BLE001 - an engine that cannot say: the default
        context = 0
    return ModelFacts.estimated(context)
