"""A checkpoint made ready to generate: weights, processor and generation defaults, per a plan.

Planning and loading are separate steps: `mlx_model.memory_plan.plan_checkpoint` decides
what fits from config.json alone (raising `MemoryPlanError` with what would), then
`load_bundle(path, plan)` applies the plan's memory limits, loads the weights at the
plan's precision and the processor, and reads the checkpoint's generation defaults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .memory_plan import MemoryPlan
from .sampling import SamplingOptions, eos_token_ids, read_generation_config, suppress_token_ids

ProgressCallback = Callable[[float, str], None]


@dataclass
class Bundle:
    """Everything an `Engine` is made from."""

    model: Any
    processor: Any
    path: Path
    plan: MemoryPlan
    memory_guard: Any  # `mlx_model.memory_limits.MemoryGuard`, or None when limits were not applied
    sampling_defaults: SamplingOptions
    eos_token_ids: list[int]
    suppress_tokens: list[int]  # ids `generation_config.json` says never to generate


def load_bundle(
    path: str | Path,
    plan: MemoryPlan,
    *,
    apply_limits: bool = True,
    dtype: Any = None,
    use_checkpoint_template: bool = False,
    progress: ProgressCallback | None = None,
) -> Bundle:
    """Load the checkpoint folder as `plan` says (bits, group size, embedding bits).

    `apply_limits` sets MLX's memory limits from the plan (the app does; tests sharing a
    process may not want to). `use_checkpoint_template` keeps the checkpoint's own chat
    template even when it is an outdated Gemma 4 one. `progress(fraction, message)` is told
    each step.
    """
    from . import import_serialized

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    path = Path(path)
    guard = None
    if apply_limits:
        guard = import_serialized("mlx_model.memory_limits").apply_memory_limits(plan).guard
    bits = plan.bits if _quantize_on_load(path) else None
    report(0.05, f"Quantizing weights to {bits} bits" if bits else "Mapping weights")
    model = import_serialized("mlx_model.loading").load_model(
        path,
        bits=bits,
        group_size=plan.group_size,
        embedding_bits=plan.embedding_bits,
        dtype=dtype,
    )
    report(0.9, "Loading the tokenizer and processors")
    processor = import_serialized("mlx_model.processing").Processor.from_pretrained(
        path, use_checkpoint_template=use_checkpoint_template
    )
    generation_config = read_generation_config(path)
    model_config = _read_json(path / "config.json")
    return Bundle(
        model=model,
        processor=processor,
        path=path,
        plan=plan,
        memory_guard=guard,
        sampling_defaults=SamplingOptions.from_generation_config(generation_config),
        eos_token_ids=sorted(eos_token_ids(generation_config, model_config)),
        suppress_tokens=suppress_token_ids(generation_config),
    )


def _quantize_on_load(path: Path) -> bool:
    """False for a checkpoint that is already quantized (it is loaded as stored)."""
    return "quantization" not in _read_json(path / "config.json")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)
