"""Memory plan before loading: weights at the chosen precision + KV cache + headroom vs the device.

On Apple Silicon the CPU and GPU share one memory pool and macOS swaps (or kills the app)
long before the nominal size is reached, so the loader plans first:

- weights: every tensor of the model at the chosen precision (quantized modules with their
  scales and biases), counted from the config alone: the network is instantiated lazily
  (MLX arrays are not materialized until evaluated), so the 12B costs nothing to inspect;
- KV cache at the chosen context: sliding layers are bounded by the window (plus one prefill
  chunk, which a rotating cache holds on top of the window while it is being written), full
  layers grow with the context; k_eq_v layers still cache both K and V; `kv_bits` quantizes
  the full layers' cache as `mlx_model.cache.make_cache` does;
- working headroom: activations of one prefill chunk (hidden states, q/k/v, MLP), the
  attention temporaries of the path each layer takes on this backend (`mlx_model.attention`:
  MLX's fused kernel, its unfused path with materialized scores, or key blocks; bounded by the
  attention budget at any context), the logits of the positions a step keeps
  (`logits_to_keep`; on the CPU backend with the float32 copy of the quantized LM head's
  scales and biases its product makes), one full layer's KV growth copy and a fixed runtime
  reserve;

- the speculative drafter, when one is loaded beside the model: its weights as they will be
  loaded (a float drafter in the model's float type, a quantized one as stored; it keeps no
  KV cache of its own: it reads the model's) and the logits of one draft round;

against the device budget: Metal's recommended working set on a Mac, physical memory
elsewhere. A plan that does not fit first halves the prefill chunk (down to
`MIN_PREFILL_CHUNK`: the long contexts that are tight get a slower prefill instead of an error);
if it still does not fit, `MemoryPlanError` says what would.

`plan_checkpoint(folder, ..., drafter=folder)` plans for a checkpoint folder (and its drafter)
from their config.json alone;
`mlx_model.memory_limits.apply_memory_limits(plan)` turns a plan into MLX limits (see
docs/MEMORY.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .attention import AttentionOptions, LayerAttention, current_backend, plan_attention
from .config import ConfigError, ModelConfig, read_checkpoint_config
from .errors import MemoryPlanError
from .quantization import (
    QuantizationRecipe,
    check_bits,
    params_from_config,
    quantizable_modules,
    quantized_nbytes,
)

GB = 1_000_000_000  # plans are printed in decimal GB (10^9 bytes)
DEFAULT_PREFILL_CHUNK = 512
# A plan that does not fit first tries smaller prefill chunks (halving), down to this.
MIN_PREFILL_CHUNK = 128
# Positions whose logits a step computes: generation asks for the last one only
# (`logits_to_keep=1`); a speculative verification step for a few more.
DEFAULT_LOGITS_POSITIONS = 16
RUNTIME_RESERVE_BYTES = 256 << 20  # MLX/Metal runtime, kernels, small buffers
KV_GROUP_SIZE = 64
# mlx-lm's caches grow in blocks of this many token slots (`KVCache.step`), so a cache can
# hold up to one block minus one slot beyond the tokens written to it.
KV_ALLOCATION_STEP = 256


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes the model will need, by part, and the budget they are measured against."""

    parameter_count: int  # as transformers counts them (layer_scalar buffers excluded)
    bits: int | None  # None: weights stay in their float dtype
    group_size: int
    embedding_bits: int | None
    context_length: int
    kv_bits: int | None
    dtype_bytes: int  # activations, KV cache and unquantized weights
    prefill_chunk: int
    weights_bytes: int
    kv_bytes: int
    kv_bytes_per_token_full: float
    kv_bytes_sliding: int
    headroom_bytes: int
    budget_bytes: int
    budget_source: str
    breakdown: dict[str, int] = field(default_factory=dict)
    backend: str = "cpu"  # whose attention kernels were counted: "metal" or "cpu"
    requested_chunk: int | None = None  # the chunk asked for, when the plan had to shrink it
    attention: tuple[LayerAttention, ...] = ()
    drafter_bytes: int = 0  # the speculative drafter's weights and draft logits (0: none)

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.headroom_bytes + self.drafter_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    @property
    def mlx_peak_bytes(self) -> int:
        """What `mx.get_peak_memory()` should reach at most: everything but the runtime reserve
        (kernels, the Metal runtime and small buffers are not MLX array allocations)."""
        return self.total_bytes - self.breakdown.get("headroom.runtime", 0)

    @property
    def weights_label(self) -> str:
        if self.bits is None:
            return f"{8 * self.dtype_bytes}-bit float weights"
        label = f"{self.bits}-bit weights"
        if self.embedding_bits is not None and self.embedding_bits != self.bits:
            label += f" ({self.embedding_bits}-bit embedding)"
        return label

    def summary(self) -> str:
        """One line: '4-bit weights and 32K context fit in 11.2 of 16.0 GB'."""
        kv = f", {self.kv_bits}-bit KV" if self.kv_bits else ""
        kv += ", the drafter" if self.drafter_bytes else ""
        verb = "fit in" if self.fits else "need"
        return (
            f"{self.weights_label}{kv} and {format_context(self.context_length)} context {verb} "
            f"{format_gb(self.total_bytes)} of {format_gb(self.budget_bytes)} GB"
        )

    def describe(self) -> str:
        """A multi-line table for `gemma-desk plan`."""
        lines = [
            f"parameters:        {self.parameter_count:,} ({self.parameter_count / 1e9:.2f} B)",
            f"weights:           {format_gb(self.weights_bytes):>7} GB  ({self.weights_label}"
            + (f", group {self.group_size}" if self.bits else "")
            + ")",
            f"KV cache:          {format_gb(self.kv_bytes):>7} GB  ({format_context(self.context_length)} "
            f"tokens; full layers {self.kv_bytes_per_token_full / 1024:.1f} KiB/token"
            + (f" at {self.kv_bits} bits" if self.kv_bits else "")
            + f", sliding layers {format_gb(self.kv_bytes_sliding)} GB bounded by the window)",
            f"working headroom:  {format_gb(self.headroom_bytes):>7} GB  (prefill chunk of "
            f"{self.prefill_chunk} tokens"
            + (
                f", reduced from {self.requested_chunk} to fit"
                if self.requested_chunk and self.requested_chunk != self.prefill_chunk
                else ""
            )
            + ")",
            f"  activations:     {format_gb(self.breakdown.get('headroom.activations', 0)):>7} GB",
            f"  attention:       {format_gb(self.breakdown.get('headroom.attention', 0)):>7} GB  "
            f"({self.backend}: " + "; ".join(a.describe() for a in self.attention) + ")",
            f"  logits:          {format_gb(self.breakdown.get('headroom.logits', 0)):>7} GB",
            f"  KV growth copy:  {format_gb(self.breakdown.get('headroom.kv_growth', 0)):>7} GB",
            f"  runtime reserve: {format_gb(self.breakdown.get('headroom.runtime', 0)):>7} GB",
            *(
                [
                    f"drafter:           {format_gb(self.drafter_bytes):>7} GB  (speculative decoding)"
                ]
                if self.drafter_bytes
                else []
            ),
            f"total:             {format_gb(self.total_bytes):>7} GB",
            f"device budget:     {format_gb(self.budget_bytes):>7} GB  ({self.budget_source})",
            ("fits: " if self.fits else "does NOT fit: ") + self.summary(),
        ]
        return "\n".join(lines)


def format_context(tokens: int) -> str:
    """8192 -> '8K', 262144 -> '256K', 1000 -> '1000'."""
    return f"{tokens // 1024}K" if tokens % 1024 == 0 and tokens >= 1024 else str(tokens)


def parse_context(text: str) -> int:
    """'8K', '128k', '32768' -> tokens (K = 1024)."""
    text = text.strip().lower()
    if text.endswith("k"):
        return int(float(text[:-1]) * 1024)
    return int(text)


def format_gb(n: float) -> str:
    """Bytes as decimal GB with one decimal: 7_200_000_000 -> "7.2"."""
    return f"{n / GB:.1f}"


# --------------------------------------------------------------------------- counting


def instantiate_lazily(config: ModelConfig) -> nn.Module:
    """The network with unevaluated (lazy) parameters: shapes without memory."""
    from . import import_serialized

    return import_serialized("mlx_model.gemma4_unified").Model(config)


def parameter_count(config: ModelConfig | nn.Module) -> int:
    """Parameters as transformers counts them: every weight, tied head once, no layer_scalar."""
    model = config if isinstance(config, nn.Module) else instantiate_lazily(config)
    return sum(
        v.size for k, v in tree_flatten(model.parameters()) if not k.endswith("layer_scalar")
    )


def quantized_weights(
    model: nn.Module,
    *,
    bits: int | None,
    group_size: int,
    embedding_bits: int | None = None,
    quantization: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Weight name -> quantization parameters of every weight that will be quantized.

    `quantization` (a pre-quantized checkpoint's config entry) wins over `bits`."""
    recipe = QuantizationRecipe(bits, group_size, embedding_bits) if bits is not None else None
    quantized: dict[str, dict[str, Any]] = {}
    for path, module in quantizable_modules(model):
        if quantization is not None:
            params = params_from_config(quantization, path)
            if params is not None and module["weight"].shape[-1] % params["group_size"]:
                params = None
        elif recipe is not None:
            params = recipe.params_for(path, module)
        else:
            params = None
        if params is not None:
            quantized[f"{path}.weight" if path else "weight"] = params
    return quantized


def weights_nbytes(
    model: nn.Module,
    *,
    bits: int | None,
    group_size: int,
    dtype_bytes: int,
    embedding_bits: int | None = None,
    quantization: dict[str, Any] | None = None,
) -> tuple[int, dict[str, int]]:
    """Bytes of `model`'s weights at a precision, without materializing anything.

    `quantization` (a pre-quantized checkpoint's config entry) wins over `bits`.
    Returns (total, {"quantized": ..., "float": ...}).
    """
    quantized_params = quantized_weights(
        model,
        bits=bits,
        group_size=group_size,
        embedding_bits=embedding_bits,
        quantization=quantization,
    )
    total_q = total_f = 0
    for name, value in tree_flatten(model.parameters()):
        params = quantized_params.get(name)
        if params is not None:
            total_q += quantized_nbytes(
                value.shape, params["bits"], params["group_size"], dtype_bytes
            )
        else:
            total_f += value.size * dtype_bytes
    return total_q + total_f, {"quantized": total_q, "float": total_f}


def cpu_upcast_nbytes(
    model: nn.Module,
    quantized: dict[str, dict[str, Any]],
    *,
    dtype_bytes: int,
    backend: str,
) -> int:
    """Float32 copies of one quantized matrix's scales and biases, made for its product on
    the CPU backend (0 on Metal, or for float32 scales).

    There `quantization.quantized_matmul` runs bf16/fp16 products through MLX's float32
    kernel, which converts the module's scales and biases to float32 for the call. The
    largest copy is the tied LM head's: vocab x hidden/64 groups x 2 x 4 bytes, 126 MB for
    the 12B, live while a step computes its logits. `model` holds the float shapes.
    """
    if backend != "cpu" or dtype_bytes >= 4:
        return 0
    shapes = {name: value.shape for name, value in tree_flatten(model.parameters())}
    return max(
        (math.prod(shapes[name]) // p["group_size"] * 2 * 4 for name, p in quantized.items()),
        default=0,
    )


def kv_cache_nbytes(
    config: ModelConfig,
    context_length: int,
    *,
    dtype_bytes: int,
    kv_bits: int | None = None,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
) -> tuple[int, float, int]:
    """(total bytes, full-layer bytes per token, sliding-layer bytes) of the KV cache.

    Counts the slots the caches allocate, not just the tokens: up to `KV_ALLOCATION_STEP` - 1
    beyond the context (a 64-token prompt plus a few decoded tokens holds 320 slots in each
    sliding layer), and for sliding layers at most the window plus one prefill chunk.
    """
    slots = context_length + KV_ALLOCATION_STEP - 1
    per_token_full = 0.0
    sliding = 0
    if kv_bits is not None:
        elem_full = kv_bits / 8 + 2 * dtype_bytes / KV_GROUP_SIZE  # packed + scale + bias
    else:
        elem_full = float(dtype_bytes)
    for spec in config.text_config.layers:
        if not spec.has_kv_projections:
            continue  # KV-shared "reuse" layers read another layer's cache
        per_token_elems = 2 * spec.num_key_value_heads * spec.head_dim  # K and V (also k_eq_v)
        if spec.is_sliding:
            held = min(slots, (spec.sliding_window or slots) + prefill_chunk)
            sliding += held * per_token_elems * dtype_bytes
        else:
            per_token_full += per_token_elems * elem_full
    total = sliding + int(math.ceil(per_token_full * slots))
    return total, per_token_full, sliding


def headroom_nbytes(
    config: ModelConfig,
    context_length: int,
    *,
    dtype_bytes: int,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    kv_bits: int | None = None,
    backend: str | None = None,
    attention_options: AttentionOptions | None = None,
) -> tuple[int, dict[str, int]]:
    """Working memory of one prefill chunk, by part (an estimate; see docs/MEMORY.md)."""
    return _headroom(
        config, context_length, dtype_bytes, prefill_chunk, kv_bits,
        backend or current_backend(), attention_options,
    )[:2]  # fmt: skip


def _headroom(config, context_length, dtype_bytes, prefill_chunk, kv_bits, backend, options):
    text = config.text_config
    c = min(prefill_chunk, context_length)
    widest_q = max(text.num_attention_heads * s.head_dim for s in text.layers)
    widest_kv = max(2 * s.num_key_value_heads * s.head_dim for s in text.layers)
    inter = max(s.intermediate_size for s in text.layers)
    attention, layer_attention = plan_attention(
        text, context=context_length, chunk=c, dtype_bytes=dtype_bytes, backend=backend,
        kv_bits=kv_bits, verify_positions=DEFAULT_LOGITS_POSITIONS, options=options,
    )  # fmt: skip
    parts = {
        # residual stream, normed copies, attention output, q/k/v of the widest layer
        "activations": c * (4 * text.hidden_size + 2 * widest_q + widest_kv) * dtype_bytes
        # gate, up and their product in the MLP
        + 3 * c * inter * dtype_bytes,
        # scores, softmax and masks of the path each layer takes (`mlx_model.attention`)
        "attention": attention,
        # logits of the kept positions (not the whole chunk: `logits_to_keep`) and the
        # softcap's temporary, in float32 at most
        "logits": 2 * min(DEFAULT_LOGITS_POSITIONS, c) * text.vocab_size * max(dtype_bytes, 4),
        # a growing full-layer cache is copied when it grows: one layer's worth at a time
        "kv_growth": 0,
        "runtime": RUNTIME_RESERVE_BYTES,
    }
    full_layers = [s for s in text.layers if not s.is_sliding and s.has_kv_projections]
    if full_layers:
        s = max(full_layers, key=lambda s: s.num_key_value_heads * s.head_dim)
        elem = (kv_bits / 8 + 2 * dtype_bytes / KV_GROUP_SIZE) if kv_bits else dtype_bytes
        parts["kv_growth"] = int(2 * s.num_key_value_heads * s.head_dim * context_length * elem)
    return sum(parts.values()), parts, layer_attention


# --------------------------------------------------------------------------- budget


def device_budget() -> tuple[int, str]:
    """(bytes, where the number comes from): Metal's recommended working set, else RAM."""
    if mx.metal.is_available():
        info = mx.device_info() if hasattr(mx, "device_info") else mx.metal.device_info()
        size = info.get("max_recommended_working_set_size")
        if size:
            return int(size), "Metal max_recommended_working_set_size"
    import psutil

    return int(psutil.virtual_memory().total), "physical memory (psutil)"


# --------------------------------------------------------------------------- planning


def plan_memory(
    config: ModelConfig,
    *,
    bits: int | None,
    context_length: int,
    kv_bits: int | None = None,
    device_budget_bytes: int | None = None,
    group_size: int = 64,
    embedding_bits: int | None = None,
    dtype_bytes: int = 2,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    model: nn.Module | None = None,
    raise_if_too_big: bool = True,
    backend: str | None = None,
    attention_options: AttentionOptions | None = None,
    drafter_bytes: int = 0,
) -> MemoryPlan:
    """Plan weights + KV + headroom (+ `drafter_bytes`) against the device budget.

    `bits` None keeps the float weights (`dtype_bytes` each); a pre-quantized config
    (`config.quantization`) is counted as stored. `backend` ("metal" or "cpu", default: the
    one MLX computes on) decides which attention kernels are counted. A plan that does not
    fit is retried with halved prefill chunks down to `MIN_PREFILL_CHUNK`. Raises
    `MemoryPlanError` proposing what fits if the total still exceeds the budget (unless
    `raise_if_too_big` is False).
    """
    if backend is not None and backend not in ("metal", "cpu"):
        raise ValueError(f"backend must be 'metal' or 'cpu', got {backend!r}")
    if bits is not None:
        check_bits(bits)
    if kv_bits is not None and kv_bits not in (4, 8):
        raise ValueError(f"kv_bits must be 4, 8 or None, got {kv_bits}")
    if context_length < 1:
        raise ValueError(f"context_length must be positive, got {context_length}")
    limit = config.text_config.max_position_embeddings
    if context_length > limit:
        raise ValueError(
            f"context_length {context_length} exceeds the model's max_position_embeddings ({limit})"
        )
    model = model if model is not None else instantiate_lazily(config)
    if device_budget_bytes is None:
        budget, source = device_budget()
    else:
        budget, source = int(device_budget_bytes), "given budget"
    plan = _fitting_plan(
        config, model, bits, group_size, embedding_bits, context_length, kv_bits,
        dtype_bytes, prefill_chunk, budget, source, backend or current_backend(),
        attention_options, drafter_bytes,
    )  # fmt: skip
    if plan.fits or not raise_if_too_big:
        return plan
    alternatives = propose_alternatives(
        config, plan, model=model, attention_options=attention_options
    )
    raise MemoryPlanError(_too_big_message(plan, alternatives), plan, alternatives)


def _fitting_plan(config, model, bits, group_size, embedding_bits, context, kv_bits,
                  dtype_bytes, prefill_chunk, budget, source, backend,
                  attention_options, drafter_bytes=0) -> MemoryPlan:  # fmt: skip
    """The plan with `prefill_chunk`, or with the largest halved chunk (>= MIN_PREFILL_CHUNK)
    that fits; the requested chunk's plan if none does."""
    chunk = prefill_chunk
    first = None
    while True:
        plan = _plan(
            config, model, bits, group_size, embedding_bits, context, kv_bits, dtype_bytes,
            chunk, budget, source, backend, attention_options, requested_chunk=prefill_chunk,
            drafter_bytes=drafter_bytes,
        )  # fmt: skip
        first = first or plan
        if plan.fits or chunk // 2 < MIN_PREFILL_CHUNK:
            return plan if plan.fits else first
        chunk //= 2


def _plan(config, model, bits, group_size, embedding_bits, context, kv_bits, dtype_bytes,
          prefill_chunk, budget, source, backend="cpu", attention_options=None,
          requested_chunk=None, drafter_bytes=0) -> MemoryPlan:  # fmt: skip
    quantization = config.quantization
    if quantization is not None:  # pre-quantized: counted as stored
        bits = int(quantization.get("bits", bits or 4))
        group_size = int(quantization.get("group_size", group_size))
    weights, w_parts = weights_nbytes(
        model,
        bits=bits,
        group_size=group_size,
        dtype_bytes=dtype_bytes,
        embedding_bits=embedding_bits,
        quantization=quantization,
    )
    kv, per_token_full, sliding = kv_cache_nbytes(
        config, context, dtype_bytes=dtype_bytes, kv_bits=kv_bits, prefill_chunk=prefill_chunk
    )
    headroom, h_parts, layer_attention = _headroom(
        config, context, dtype_bytes, prefill_chunk, kv_bits, backend, attention_options
    )
    # The logits step on the CPU backend also holds the quantized head's scales in float32.
    upcast = cpu_upcast_nbytes(
        model,
        quantized_weights(
            model,
            bits=bits,
            group_size=group_size,
            embedding_bits=embedding_bits,
            quantization=quantization,
        ),
        dtype_bytes=dtype_bytes,
        backend=backend,
    )
    h_parts["logits"] += upcast
    headroom += upcast
    breakdown = {f"weights.{k}": v for k, v in w_parts.items()}
    breakdown.update({f"headroom.{k}": v for k, v in h_parts.items()})
    return MemoryPlan(
        parameter_count=parameter_count(model),
        bits=bits,
        group_size=group_size,
        embedding_bits=embedding_bits,
        context_length=context,
        kv_bits=kv_bits,
        dtype_bytes=dtype_bytes,
        prefill_chunk=prefill_chunk,
        weights_bytes=weights,
        kv_bytes=kv,
        kv_bytes_per_token_full=per_token_full,
        kv_bytes_sliding=sliding,
        headroom_bytes=headroom,
        budget_bytes=budget,
        budget_source=source,
        breakdown=breakdown,
        backend=backend,
        requested_chunk=requested_chunk,
        attention=tuple(layer_attention),
        drafter_bytes=int(drafter_bytes),
    )


def plan_checkpoint(
    folder: str | Path | None,
    *,
    bits: int | None,
    context_length: int | None = None,
    default_context: int = 32_768,
    drafter: str | Path | None = None,
    **options: Any,
) -> MemoryPlan:
    """`plan_memory` for a checkpoint folder (None: the 12B reference config), from its config.

    `context_length` defaults to the smaller of the model's limit and `default_context`;
    `drafter` is the folder of a speculative drafter to load beside it (counted too).
    """
    config, dtype_bytes, _ = read_checkpoint_config(folder)
    limit = config.text_config.max_position_embeddings
    context = int(context_length or min(limit, default_context))
    if drafter is not None:
        options["drafter_bytes"] = drafter_nbytes(drafter, dtype_bytes=dtype_bytes)
    return plan_memory(
        config, bits=bits, context_length=context, dtype_bytes=dtype_bytes, **options
    )


def drafter_nbytes(folder: str | Path, *, dtype_bytes: int, max_draft: int = 4) -> int:
    """Bytes a speculative drafter adds (from its config.json; nothing is materialized).

    Its weights as `mlx_model.speculative.open_drafter` loads them (float weights in the
    model's float type, `dtype_bytes`; a quantized conversion as stored) and the float32
    logits of `max_draft` draft steps. It has no KV cache: it reads the model's.
    """
    from .gemma4_assistant import AssistantConfig
    from .gemma4_assistant import Model as AssistantModel

    path = Path(folder) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (a drafter folder needs config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    config = AssistantConfig.from_dict(raw)
    weights, _ = weights_nbytes(
        AssistantModel(config),
        bits=None,
        group_size=KV_GROUP_SIZE,
        dtype_bytes=dtype_bytes,
        quantization=config.quantization,
    )
    return weights + max_draft * config.text_config.vocab_size * 4


def propose_alternatives(
    config: ModelConfig,
    plan: MemoryPlan,
    *,
    model: nn.Module | None = None,
    attention_options: AttentionOptions | None = None,
) -> list[MemoryPlan]:
    """Plans that fit, best first: same weights with a shorter context, 4-bit weights, quantized KV.

    For each weight precision (the requested one, then 4 bits if it was wider; pre-quantized
    checkpoints keep theirs) and KV precision (as requested, then 8 and 4 bits), the longest
    context (halving from the requested one, at least 1K) that fits.
    """
    model = model if model is not None else instantiate_lazily(config)
    weight_options: list[int | None] = [plan.bits]
    if config.quantization is None and (plan.bits is None or plan.bits > 4):
        weight_options.append(4)
    kv_options: list[int | None] = [plan.kv_bits] + [
        b for b in (8, 4) if plan.kv_bits is None or b < plan.kv_bits
    ]
    found: list[MemoryPlan] = []
    for bits in weight_options:
        for kv_bits in kv_options:
            context = plan.context_length
            while context >= 1024:
                candidate = _fitting_plan(
                    config, model, bits, plan.group_size, plan.embedding_bits if bits == plan.bits else None,
                    context, kv_bits, plan.dtype_bytes, plan.requested_chunk or plan.prefill_chunk,
                    plan.budget_bytes, plan.budget_source, plan.backend, attention_options,
                    plan.drafter_bytes,
                )  # fmt: skip
                if candidate.fits:
                    found.append(candidate)
                    break
                context //= 2
    # Prefer the longest context, then the fewest quantized parts.
    found.sort(key=lambda p: (-p.context_length, p.kv_bits is not None, -(p.bits or 16)))
    unique: list[MemoryPlan] = []
    for p in found:
        if all(p.summary() != q.summary() for q in unique):
            unique.append(p)
    return unique[:3]


def _too_big_message(plan: MemoryPlan, alternatives: list[MemoryPlan]) -> str:
    head = (
        f"{plan.weights_label} and {format_context(plan.context_length)} context need "
        f"{format_gb(plan.total_bytes)} GB (weights {format_gb(plan.weights_bytes)} + KV cache "
        f"{format_gb(plan.kv_bytes)} + working headroom {format_gb(plan.headroom_bytes)}"
        + (f" + drafter {format_gb(plan.drafter_bytes)}" if plan.drafter_bytes else "")
        + ") but the device "
        f"budget is {format_gb(plan.budget_bytes)} GB ({plan.budget_source})."
    )
    if not alternatives:
        return head + " Nothing fits, not even 4-bit weights with a 1K context."
    return head + " Instead: " + "; ".join(p.summary() for p in alternatives) + "."


__all__ = [
    "MIN_PREFILL_CHUNK",
    "MemoryPlan",
    "MemoryPlanError",
    "cpu_upcast_nbytes",
    "device_budget",
    "drafter_nbytes",
    "format_context",
    "kv_cache_nbytes",
    "parameter_count",
    "plan_checkpoint",
    "plan_memory",
    "quantized_weights",
    "weights_nbytes",
]
