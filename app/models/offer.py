"""What the app says about a model before loading it: the first-run download offer and the
memory plan as rows and a verdict, for the GUI, the CLI and the settings alike.

With "Faster answers" on (the default), the offer downloads the model's assistant (its
speculative drafter) with it, and a plan counts the drafter found beside a downloaded model
(`mlx_model.hub.find_drafter`), as loading it would.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from app.models.catalog import GEMMA_4_12B_IT, estimate_with_memory_plan, memory_plan_for
from app.settings import Settings

PRECISION_BITS = {"auto": None, "bf16": None, "8bit": 8, "4bit": 4}


@dataclass
class DownloadOffer:
    """The first-run screen's facts about the recommended model download."""

    name: str
    repo_id: str
    size_bytes: int
    free_disk_bytes: int
    destination: str
    memory_plan: list[tuple[str, str]] = field(default_factory=list)  # (label, value) rows
    plan_verdict: str = ""
    fits: bool = True
    assistant_repo: str = ""  # downloaded with the model (faster answers), "" for none


def plan_rows(plan: Any) -> list[tuple[str, str]]:
    """A memory plan as (label, value) rows."""
    return [
        ("Weights", f"{_gb(plan.weights_bytes)} ({plan.weights_label})"),
        ("KV cache", f"{_gb(plan.kv_bytes)} for {plan.context_length:,} tokens"),
        ("Working headroom", _gb(plan.headroom_bytes)),
        *([("Drafter (faster answers)", _gb(plan.drafter_bytes))] if plan.drafter_bytes else []),
        ("Total", f"{_gb(plan.total_bytes)} of {_gb(plan.budget_bytes)} available"),
    ]


def plan_verdict(plan: Any) -> str:
    """One sentence: whether the plan fits, and what to change when it does not."""
    if plan.fits:
        return f"✓ Fits: {plan.summary()}."
    return (
        f"✗ Does not fit: {plan.summary()}. Choose 4-bit weights, a shorter context or a "
        "quantized KV cache in Settings."
    )


def memory_plan_text(
    settings: Settings, path: str | None, current: str | None
) -> tuple[list[tuple[str, str]], str]:
    """Rows and verdict for the model at `path` (or the loaded one) under the settings."""
    if path is None and settings.backend == "remote":
        return (
            [],
            f"The model runs on the remote server {settings.remote_url}: no memory is used here.",
        )
    folder = path or current or None
    # A checkpoint loads as the settings say: "auto" and "bf16" keep its stored weights (a
    # bf16 model stays bf16); only with no folder (the download) is the catalog's plan used.
    bits = PRECISION_BITS.get(settings.precision)
    entry = GEMMA_4_12B_IT.with_load_bits(bits if folder else bits or GEMMA_4_12B_IT.load_bits)
    try:
        drafter = None
        if folder and settings.speculative_decoding:
            from mlx_model.hub import find_drafter

            drafter = find_drafter(folder)
        plan = memory_plan_for(
            entry, folder, settings.context_length, settings.kv_cache_bits, drafter
        )
    except Exception as exc:  # noqa: BLE001 - no readable config: explain
        return [], f"No memory plan: {exc}"
    return plan_rows(plan), plan_verdict(plan)


def download_offer(settings: Settings) -> DownloadOffer:
    """The recommended download: size, free disk, where it goes (the Hugging Face cache,
    shared with mlx-lm and mlx-vlm), and whether it will fit."""
    from mlx_model.hub import repo_storage_dir

    entry = GEMMA_4_12B_IT
    destination = repo_storage_dir(entry.repo_id)
    probe = destination
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    try:
        size = estimate_with_memory_plan(entry).stored_bytes
        plan = memory_plan_for(entry, None, settings.context_length, settings.kv_cache_bits)
        rows, verdict, fits = plan_rows(plan), plan_verdict(plan), plan.fits
    except Exception as exc:  # noqa: BLE001
        size, rows, verdict, fits = 0, [], f"Memory plan unavailable: {exc}", True
    bits = entry.effective_bits
    name = f"{entry.name} ({bits}-bit when loaded)" if bits else entry.name
    assistant = entry.assistant_repo if settings.speculative_decoding else ""
    return DownloadOffer(
        name, entry.repo_id, size, free, str(destination), rows, verdict, fits, assistant
    )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"
