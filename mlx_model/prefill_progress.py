"""Prefill progress of a long prompt: tokens done of the total, and an estimate of the time left.

A prompt is only worth a progress display when its prefill takes a while: the engine
reports `PrefillProgress` events when a turn has at least `PREFILL_PROGRESS_MIN_TOKENS`
prompt tokens to run (the prompt cache's reused prefix does not count). At a few hundred
prompt tokens a second, 2048 tokens are a few seconds of waiting: less than that, and the
first token comes before a progress display would be read.

`PrefillMeter` turns chunk boundaries into events with an ETA. A prompt token costs more
the further in it sits (each attends to every key before it on the full layers), so the
time left is not the tokens left at the average rate: the meter fits the time per token
as `a + b * position` to the chunks so far (least squares; the first chunk, which pays
for warm-up, is left out once there are others) and integrates it over the tokens left.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .events import PrefillProgress

PREFILL_PROGRESS_MIN_TOKENS = 2048


class PrefillMeter:
    """Progress events for prompt tokens [start, total) as chunks complete."""

    def __init__(
        self, start: int, total: int, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.start = start
        self.total = total
        self._clock = clock
        self._began = clock()
        self._last_done = start
        self._last_time = self._began
        # Per chunk: (middle position, tokens, seconds).
        self._chunks: list[tuple[float, int, float]] = []

    def update(self, done: int) -> PrefillProgress:
        """The event for `done` prompt tokens now in the cache."""
        now = self._clock()
        tokens = done - self._last_done
        if tokens > 0:
            middle = (self._last_done + done) / 2
            self._chunks.append((middle, tokens, now - self._last_time))
        self._last_done, self._last_time = done, now
        return PrefillProgress(
            done=done, total=self.total, eta_s=self.eta(done), elapsed_s=now - self._began
        )

    def eta(self, done: int) -> float | None:
        """Seconds until `total` from `done` (None before the first chunk has run)."""
        if done >= self.total:
            return 0.0
        if not self._chunks:
            return None
        chunks = self._chunks[1:] if len(self._chunks) > 1 else self._chunks
        position = np.array([c[0] for c in chunks])
        weight = np.array([c[1] for c in chunks], dtype=np.float64)
        per_token = np.array([c[2] / c[1] for c in chunks])
        slope = 0.0
        if len(chunks) >= 2 and np.ptp(position) > 0:
            mean_p = np.average(position, weights=weight)
            mean_y = np.average(per_token, weights=weight)
            spread = np.average((position - mean_p) ** 2, weights=weight)
            covariance = np.average((position - mean_p) * (per_token - mean_y), weights=weight)
            slope = max(0.0, float(covariance / spread))
            base = mean_y - slope * mean_p
        else:
            base = float(np.average(per_token, weights=weight))
        # The time of the tokens left: the integral of base + slope * p over [done, total).
        left = base * (self.total - done) + slope * (self.total**2 - done**2) / 2
        return max(0.0, float(left))
