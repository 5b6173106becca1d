"""Memory limits at run time: MLX's limits from a plan, and the guard the token loop asks."""

from __future__ import annotations

import json

import mlx.core as mx
import pytest

from mlx_model.config import ModelConfig
from mlx_model.errors import MemoryLimitError
from mlx_model.memory_limits import MemoryGuard, apply_memory_limits
from mlx_model.memory_plan import plan_memory

BIG_BUDGET = 10**15


@pytest.fixture
def restore_mlx_limits():
    """Put MLX's process-wide memory and cache limits back after a test changes them."""
    memory = mx.get_memory_limit()
    cache = mx.set_cache_limit(0)
    mx.set_cache_limit(cache)
    yield
    mx.set_memory_limit(memory)
    mx.set_cache_limit(cache)


@pytest.fixture(scope="module")
def tiny_config(tiny_checkpoint) -> ModelConfig:
    return ModelConfig.from_dict(json.loads((tiny_checkpoint / "config.json").read_text()))


def test_applied_limits_set_mlx_memory_and_cache_limits(tiny_config, restore_mlx_limits):
    plan = plan_memory(tiny_config, bits=4, context_length=2048, device_budget_bytes=BIG_BUDGET)
    applied = apply_memory_limits(plan)
    assert mx.get_memory_limit() == applied.memory_limit == plan.total_bytes
    assert mx.set_cache_limit(0) == applied.cache_limit == plan.headroom_bytes


def test_guard_refuses_a_context_longer_than_planned(tiny_config, restore_mlx_limits):
    plan = plan_memory(tiny_config, bits=4, context_length=2048, device_budget_bytes=BIG_BUDGET)
    guard = apply_memory_limits(plan).guard
    guard.check_context(2048)
    with pytest.raises(MemoryLimitError, match="2,049 tokens"):
        guard.check_context(2049)


def test_guard_refuses_an_allocation_past_the_plan(tiny_config):
    plan = plan_memory(tiny_config, bits=4, context_length=2048, device_budget_bytes=BIG_BUDGET)
    guard = MemoryGuard(limit_bytes=plan.total_bytes, context_length=2048)
    guard.check_allocation(1024)
    with pytest.raises(MemoryLimitError):
        guard.check_allocation(plan.total_bytes + 1)
