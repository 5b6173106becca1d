"""A drafter for tests: proposes a known continuation, right with a chosen probability.

The real drafter with random weights rarely agrees with its random target; this one makes
whole blocks get accepted, and rejected at random places, so the speculative loop's
acceptance, rollback and bookkeeping all run.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np


class ScriptedDrafter:
    """Proposes `reference[position + 1 + j]` with probability `agree`, else another token."""

    def __init__(self, reference: list[int], vocab: int, agree: float, seed: int = 0):
        self.reference, self.vocab, self.agree = reference, vocab, agree
        self.rng = np.random.default_rng(seed)
        self.position = 0
        self.j = 0

    def start(self, caches, position):
        self.position, self.j = position, 0

    def step(self, token, hidden):
        index = self.position + 1 + self.j
        self.j += 1
        right = self.reference[index] if index < len(self.reference) else 0
        proposal = right
        if self.rng.random() >= self.agree:
            proposal = (right + 1 + int(self.rng.integers(self.vocab - 1))) % self.vocab
        row = np.zeros((1, self.vocab), np.float32)
        row[0, proposal] = 10.0
        return mx.array(row), hidden
