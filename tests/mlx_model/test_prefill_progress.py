"""The prefill meter: progress events and the time left, with a clock the test drives."""

from __future__ import annotations

import pytest

from mlx_model.prefill_progress import PrefillMeter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_chunks(meter: PrefillMeter, clock: Clock, bounds: list[int], cost) -> list:
    """Advance the clock by each chunk's cost (`cost(position)` seconds per token)."""
    events, done = [], meter.start
    for end in bounds:
        clock.now += sum(cost(p) for p in range(done, end))
        done = end
        events.append(meter.update(done))
    return events


def test_a_constant_cost_per_token_gives_the_exact_time_left():
    clock = Clock()
    meter = PrefillMeter(0, 4096, clock=clock)
    events = run_chunks(meter, clock, [512, 1024, 1536], lambda p: 0.002)
    assert events[-1].done == 1536 and events[-1].total == 4096
    assert events[-1].eta_s == pytest.approx((4096 - 1536) * 0.002)
    assert events[-1].elapsed_s == pytest.approx(1536 * 0.002)


def test_a_cost_growing_with_the_position_is_extrapolated_not_averaged():
    clock = Clock()
    meter = PrefillMeter(0, 8192, clock=clock)
    cost = lambda p: 1e-3 + 1e-6 * p  # noqa: E731 - attention over the keys before p
    events = run_chunks(meter, clock, [512, 1024, 1536, 2048], cost)
    left = sum(cost(p) for p in range(2048, 8192))
    assert events[-1].eta_s == pytest.approx(left, rel=0.01)
    average = clock.now / 2048 * (8192 - 2048)
    assert average < 0.8 * left  # what a plain rate would have said


def test_the_first_chunk_warm_up_does_not_bend_the_estimate():
    clock = Clock()
    meter = PrefillMeter(0, 4096, clock=clock)
    clock.now += 5.0  # compiling kernels, paging in weights
    events = run_chunks(meter, clock, [512, 1024, 1536, 2048], lambda p: 0.001)
    assert events[-1].eta_s == pytest.approx(2048 * 0.001)


def test_no_estimate_before_a_chunk_and_zero_at_the_end():
    clock = Clock()
    meter = PrefillMeter(1000, 3000, clock=clock)
    assert meter.eta(1000) is None
    events = run_chunks(meter, clock, [1500, 3000], lambda p: 0.001)
    assert events[0].eta_s == pytest.approx(1500 * 0.001)
    assert events[-1].eta_s == 0.0
