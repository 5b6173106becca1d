"""Logits processors that force a model turn's tokens: how the tests script a random model.

A tiny random model cannot choose to answer, to stop or to call a tool. These processors
join the engine's sampling chain (`logits_processors=`) and mask every token but the one
the test wants, so the turn really runs (prefill, decode, parsing, the prompt cache) and
says exactly the script.

A processor knows which token it is choosing from the ids it is shown (the prompt plus the
turn's ids so far), not from how often it was called: a speculative loop scores drafted
and verified positions, and goes back after a rejection, so calls and steps differ there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mlx.core as mx


def force_tokens(choose: Callable[[int], int | None]) -> Any:
    """A processor forcing token `choose(step)` at each step (None: the model's own choice).

    `step` counts the ids added to the history since the first call (the prompt's)."""
    start: int | None = None

    def process(tokens: mx.array, logits: mx.array) -> mx.array:
        nonlocal start
        seen = 0 if tokens is None else int(tokens.size)
        if start is None:
            start = seen
        target = choose(seen - start)
        if target is None:
            return logits
        keep = mx.arange(logits.shape[-1]) == target
        return mx.where(keep, mx.zeros_like(logits), mx.full(logits.shape, -mx.inf, logits.dtype))

    return process


def forced(ids: Sequence[int | None]) -> Any:
    """A processor making one turn emit `ids`, then choose freely; a script ending in None
    repeats its last id forever (the turn never stops by itself)."""
    ids = list(ids)

    def choose(step: int) -> int | None:
        if step < len(ids) and ids[step] is not None:
            return ids[step]
        if len(ids) >= 2 and ids[-1] is None:
            return ids[-2]
        return None

    return force_tokens(choose)
