"""Memory limits at run time: MLX's limits set from a memory plan, and the guard the engine asks.

`apply_memory_limits(plan)` sets MLX's memory, cache and (on Metal) wired limits from a
`mlx_model.memory_plan.MemoryPlan` and returns a `MemoryGuard`, which the token loop asks
before each prefill chunk and before the cache grows past the planned context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from .errors import MemoryLimitError
from .memory_plan import device_budget, format_context, format_gb


@dataclass
class MemoryGuard:
    """Checks the app runs before growing memory; raises `MemoryLimitError` past the plan.

    MLX 0.32's memory limit is a throttle (evaluation waits for in-flight work to free
    memory), not an error, so the engine asks the guard before each prefill chunk and
    before the cache grows past the planned context.
    """

    limit_bytes: int
    context_length: int

    def check_context(self, total_tokens: int) -> None:
        if total_tokens > self.context_length:
            raise MemoryLimitError(
                f"the conversation needs {total_tokens:,} tokens but the memory plan allows "
                f"{self.context_length:,} ({format_context(self.context_length)}); start a new "
                "conversation or load with a longer context"
            )

    def check_allocation(self, extra_bytes: int, what: str = "this step") -> None:
        in_use = mx.get_active_memory() + mx.get_cache_memory()
        if in_use + extra_bytes > self.limit_bytes:
            raise MemoryLimitError(
                f"{what} needs {format_gb(extra_bytes)} GB more but {format_gb(in_use)} of the planned "
                f"{format_gb(self.limit_bytes)} GB are in use"
            )

    def check_peak(self) -> None:
        peak = mx.get_peak_memory()
        if peak > self.limit_bytes:
            raise MemoryLimitError(
                f"memory use reached {format_gb(peak)} GB, past the planned {format_gb(self.limit_bytes)} GB"
            )


@dataclass(frozen=True)
class AppliedLimits:
    memory_limit: int
    cache_limit: int
    wired_limit: int | None  # None where there is no wired memory to set (CPU backend)
    guard: MemoryGuard


def apply_memory_limits(plan: Any) -> AppliedLimits:
    """Set MLX's limits from a plan and return a guard for the engine.

    - memory limit = the plan's total (capped at the budget): evaluation past it waits for
      in-flight work to free memory instead of piling up allocations;
    - cache limit = the working headroom: freed buffers beyond it go back to the OS;
    - on Metal, wired limit = weights + KV (capped at the recommended working set), so the
      model stays resident instead of being paged out between turns;
    - on the CPU backend there is no wired memory: only the memory and cache limits apply.
    """
    limit = min(plan.total_bytes, plan.budget_bytes)
    mx.set_memory_limit(limit)
    mx.set_cache_limit(plan.headroom_bytes)
    wired: int | None = None
    if mx.metal.is_available():
        budget, _ = device_budget()
        wired = min(plan.weights_bytes + plan.kv_bytes, budget)
        mx.set_wired_limit(wired)
    return AppliedLimits(
        memory_limit=limit,
        cache_limit=plan.headroom_bytes,
        wired_limit=wired,
        guard=MemoryGuard(limit_bytes=limit, context_length=plan.context_length),
    )
