"""Attention with bounded memory: MLX's kernel where it fits, key blocks with the online softmax where not.

MLX's fused attention kernels (Metal only) never materialize the scores, but they exist for a
few head dims only (see `mlx_fused_kernel`); everywhere else, and always on the CPU backend,
`mx.fast.scaled_dot_product_attention` materializes the whole (heads x queries x keys) score
matrix. For the 12B's full layers (head dim 512) that is 4.3 GB per layer for a 512-token
chunk against 256K keys. When the scores of a chunk would pass the attention budget, the chunk
runs over blocks of keys with the online-softmax (flash-attention) recurrence: running max and
sum in float32, the mask built per block, so temporaries are O(queries x block).

`AttentionMask` describes which keys a chunk's queries see (causal, sliding window,
image/video blocks in either overlay mode) without building it; the plain path materializes it
once per forward and layer type, the blocked path one key block at a time. `attention_path`
decides what runs, and the memory plan (`mlx_model.memory_plan`) asks it the same question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import mlx.core as mx

Backend = Literal["metal", "cpu"]
PathKind = Literal["fused", "plain", "blocked"]

# Bytes the attention of one layer may use for its temporaries (scores, softmax, masks).
DEFAULT_ATTENTION_BUDGET = 128 << 20
BLOCK_ALIGN = 64  # key blocks are a multiple of this (and at least this)
# Live temporaries, in units of one float32 score block (heads x queries x block x 4 bytes),
# while the blocked path runs a key block (measured on the CPU backend: the block's scores and
# their exponentials overlap; the bool mask and the running sums are the rest).
BLOCKED_LIVE_BLOCKS = 2.25
# Live temporaries of MLX's unfused path, in units of its score matrix (in the compute dtype):
# the scores; `where` and the precise softmax write in place. Measured on the CPU backend.
PLAIN_LIVE_SCORES = 1.1
# Live temporaries while a mask is built, in bytes per (query, key) pair: the comparisons and
# their conjunctions (bool) before the result is kept.
MASK_BUILD_BYTES = 4

# Head dims of MLX 0.32's fused Metal kernels (`has_fused_kernel` in
# mlx/backend/metal/scaled_dot_product_attention.cpp): the full-attention kernel for more than
# 8 queries, the vector kernel for 8 or fewer.
FUSED_FULL_HEAD_DIMS = (64, 72, 80, 96, 128, 192, 256)
FUSED_VECTOR_HEAD_DIMS = (64, 96, 128, 192, 256)
# ... of which MLX itself routes these to the unfused path as faster (`use_fallback`), except on
# NAX devices for long causal prefills of head dim 256.
UNFUSED_BY_CHOICE_FULL = (192, 256)
UNFUSED_BY_CHOICE_VECTOR = (192,)


@dataclass(frozen=True)
class AttentionOptions:
    """How attention picks its path.

    `mode`: "auto" (fused kernel where MLX has one; MLX's unfused path while its temporaries fit
    `budget_bytes`; key blocks otherwise), "plain" (always `mx.fast.scaled_dot_product_attention`,
    as before this module existed; for comparisons) or "blocked" (key blocks whenever a chunk
    has more than one query). `block`: force the key block size (tests); None derives it from
    the budget.
    """

    budget_bytes: int = DEFAULT_ATTENTION_BUDGET
    mode: Literal["auto", "plain", "blocked"] = "auto"
    block: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "plain", "blocked"):
            raise ValueError(f"attention mode must be auto, plain or blocked, got {self.mode!r}")
        if self.budget_bytes < 1:
            raise ValueError(f"attention budget must be positive, got {self.budget_bytes}")
        if self.block is not None and self.block < 2:
            raise ValueError(f"attention block must be at least 2 keys, got {self.block}")


@dataclass(frozen=True)
class AttentionPath:
    """What one attention call runs and what it keeps alive besides its inputs and output."""

    kind: PathKind
    block: int | None  # keys per block on the blocked path
    scores_materialized: bool  # the whole score matrix exists at once
    temp_bytes: int  # estimated live temporaries (scores, softmax, mask)


def current_backend() -> Backend:
    """Where MLX computes: "metal" on a Metal GPU, else "cpu" (no fused attention kernels)."""
    if mx.default_device() == mx.gpu and mx.metal.is_available():
        return "metal"
    return "cpu"


def mlx_fused_kernel(
    backend: Backend, head_dim: int, queries: int, keys: int, heads: int, kv_heads: int
) -> bool:
    """Whether MLX 0.32 runs a fused kernel (no materialized scores) for this attention.

    Mirrors `has_fused_kernel` and the "unfused is faster" routing of `use_fallback`: on Metal,
    head dims 64-128 fused for any length; 192/256 fused for up to 8 queries only (256 also for
    long causal prefills on NAX devices, not modelled: the plan then over-counts); 512 (the
    12B's full layers) never. The CPU backend has no fused kernel.
    """
    if backend != "metal":
        return False
    if queries > 8:
        return head_dim in FUSED_FULL_HEAD_DIMS and head_dim not in UNFUSED_BY_CHOICE_FULL
    return (
        head_dim in FUSED_VECTOR_HEAD_DIMS
        and head_dim not in UNFUSED_BY_CHOICE_VECTOR
        and queries <= keys
        and queries * (heads // kv_heads) <= 32
    )


def attention_path(
    *,
    backend: Backend,
    heads: int,
    kv_heads: int,
    head_dim: int,
    queries: int,
    keys: int,
    dtype_bytes: int,
    array_mask: bool,
    options: AttentionOptions | None = None,
    batch: int = 1,
) -> AttentionPath:
    """The path an attention of this shape takes, and its temporaries (see the module doc).

    `array_mask`: the plain path needs a materialized (queries x keys) mask (sliding window,
    image/video blocks); a plain causal mask is MLX's "causal" string and costs nothing.
    """
    options = options or AttentionOptions()
    mask_bytes = batch * queries * keys * MASK_BUILD_BYTES if array_mask else 0
    rows = batch * heads * queries
    scores = rows * keys * dtype_bytes
    # the unfused path scales a copy of q; the blocked path keeps a float32 accumulator and the
    # block's product with V besides the scores
    plain_fixed = rows * head_dim * dtype_bytes
    blocked_fixed = 2 * rows * head_dim * 4
    plain = AttentionPath(
        "plain", None, True, int(PLAIN_LIVE_SCORES * scores) + mask_bytes + plain_fixed
    )
    fused = mlx_fused_kernel(backend, head_dim, queries, keys, heads, kv_heads)
    if options.mode == "plain" or queries == 1:
        return AttentionPath("fused", None, False, mask_bytes) if fused else plain
    if options.mode == "auto":
        if fused and mask_bytes <= options.budget_bytes:
            return AttentionPath("fused", None, False, mask_bytes)
        if not fused and plain.temp_bytes <= options.budget_bytes:
            return plain
    block = options.block or block_size(options.budget_bytes - blocked_fixed, rows, batch * queries)
    block = min(block, keys)
    live = BLOCKED_LIVE_BLOCKS * rows * block * 4 + batch * queries * block * MASK_BUILD_BYTES
    return AttentionPath("blocked", block, False, int(live) + blocked_fixed)


def block_size(budget_bytes: int, rows: int, mask_rows: int = 0) -> int:
    """Keys per block so that the blocked path's temporaries stay within `budget_bytes`: float32
    scores and exponentials of `rows` (batch x heads x queries) rows, and a mask of
    `mask_rows` (batch x queries) rows. At least `BLOCK_ALIGN` keys."""
    per_key = BLOCKED_LIVE_BLOCKS * rows * 4 + mask_rows * MASK_BUILD_BYTES
    keys = int(budget_bytes // per_key)
    return max(BLOCK_ALIGN, keys // BLOCK_ALIGN * BLOCK_ALIGN)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class LayerAttention:
    """The attention of one kind of layer at its largest: the path and temporaries the plan counts."""

    layer_type: str
    head_dim: int
    heads: int
    kv_heads: int
    queries: int
    keys: int
    path: AttentionPath
    kept_mask_bytes: int  # a plain-path mask shared by the forward's layers of this type

    def describe(self) -> str:
        kind = {
            "fused": "MLX fused kernel, scores not materialized",
            "plain": f"MLX unfused, {self.heads} x {self.queries} x {self.keys} scores",
            "blocked": f"key blocks of {self.path.block}, scores not materialized",
        }[self.path.kind]
        return f"{self.layer_type.split('_')[0]} layers, head dim {self.head_dim}: {kind}"


def plan_attention(
    text_config: Any,
    *,
    context: int,
    chunk: int,
    dtype_bytes: int,
    backend: Backend,
    kv_bits: int | None = None,
    verify_positions: int = 16,
    options: AttentionOptions | None = None,
) -> tuple[int, list[LayerAttention]]:
    """(bytes, per layer kind) of attention temporaries at `context` with prefill `chunk`.

    Each kind of layer (type, heads, head dim) is planned at its worst step: a prefill chunk
    against the context (full layers: every key; sliding: the window plus the chunk), one
    decode step, or a verification step of `verify_positions` queries; layers run one at a time,
    so the bytes are the largest such step plus the plain-path masks a forward keeps.
    """
    options = options or AttentionOptions()
    window = text_config.attention_window
    overlay = text_config.vision_overlay
    kinds: dict[tuple, Any] = {}
    for spec in text_config.layers:
        kinds.setdefault(
            (spec.layer_type, text_config.num_attention_heads, spec.num_key_value_heads,
             spec.head_dim, spec.is_sliding),
            spec,
        )  # fmt: skip
    worst = 0
    kept = 0
    lines: list[LayerAttention] = []
    for (layer_type, heads, kv_heads, head_dim, sliding), _spec in kinds.items():
        quantized = kv_bits is not None and not sliding
        steps = []
        for queries in sorted({min(chunk, context), min(verify_positions, context), 1}):
            keys = min(context, window - 1 + queries) if sliding else context
            array_mask = (
                (keys > window or overlay is not None) if sliding else overlay == "all_layers"
            )
            path = attention_path(
                backend="cpu" if quantized else backend,
                heads=heads,
                kv_heads=kv_heads,
                head_dim=head_dim,
                queries=queries,
                keys=keys,
                dtype_bytes=dtype_bytes,
                array_mask=array_mask and queries > 1,
                options=options,
            )
            kept_mask = queries * keys if path.kind != "blocked" and array_mask else 0
            steps.append(LayerAttention(
                layer_type, head_dim, heads, kv_heads, queries, keys, path, kept_mask
            ))  # fmt: skip
        prefill = max(steps, key=lambda a: a.queries)
        lines.append(prefill)
        worst = max([worst] + [a.path.temp_bytes for a in steps])
        kept += prefill.kept_mask_bytes
    return worst + kept, lines


# --------------------------------------------------------------------------- masks


OverlayMode = Literal["or", "within_window"]


@dataclass
class AttentionMask:
    """Which keys the queries of one chunk see, built lazily (whole or one key block at a time).

    Queries are absolute positions `q_start .. q_start + length - 1`; keys are the contiguous
    positions `k_start .. q_start + length - 1` (a full layer's cache holds every past key, a
    rotating sliding cache the last few plus the chunk's). Key k is visible to query q when:

    - no overlay: k <= q, and q - window < k when the layer has a window;
    - overlay "or" (transformers' forward path, every layer): that, or q and k are in the same
      image/video block;
    - overlay "within_window" (Google's, sliding layers): (k <= q or same block) and
      q - window < k (and k < q + window when `window_ahead`).

    `blocks` holds the block id of each query of the chunk (-1 outside blocks; shape (B or 1,
    length)); keys before the chunk are never in a query's block, since prefill chunks never
    cut a block. `options` decide the path (`attention_path`).
    """

    q_start: int
    length: int
    k_start: int
    window: int | None = None
    window_ahead: bool = False
    blocks: mx.array | None = None
    overlay: OverlayMode | None = None
    options: AttentionOptions = field(default_factory=AttentionOptions)
    _whole: Any = field(default=None, init=False, repr=False)

    @property
    def keys(self) -> int:
        return self.q_start - self.k_start + self.length

    @property
    def needs_array(self) -> bool:
        """Whether the plain path needs a materialized mask (not None or MLX's "causal")."""
        if self.blocks is not None and self.overlay is not None:
            return True
        return self.window is not None and self.keys > self.window

    def all_visible(self, k0: int, k1: int) -> bool:
        """Every query sees every key of positions [k0, k1) (relative to `k_start`)."""
        first, last = self.k_start + k0, self.k_start + k1 - 1
        if last > self.q_start:  # some key is after the first query
            return False
        return self.window is None or first > self.q_start + self.length - 1 - self.window

    def block(self, k0: int, k1: int) -> mx.array | None:
        """Boolean mask (B or 1, 1, length, k1 - k0) for keys [k0, k1), None if all visible."""
        if self.all_visible(k0, k1):
            return None
        qpos = mx.arange(self.q_start, self.q_start + self.length)[:, None]
        kpos = mx.arange(self.k_start + k0, self.k_start + k1)[None]
        visible = kpos <= qpos
        in_window = None
        if self.window is not None:
            in_window = kpos > qpos - self.window
            if self.window_ahead and self.overlay == "within_window":
                in_window = in_window & (kpos < qpos + self.window)
        same = self._same_block(k0, k1) if self.overlay is not None else None
        if self.overlay == "within_window" and same is not None:
            visible = visible | same
            if in_window is not None:
                visible = visible & in_window
        else:
            if in_window is not None:
                visible = visible & in_window
            if same is not None:
                visible = visible | same
        return visible[:, None] if visible.ndim == 3 else visible[None, None]

    def _same_block(self, k0: int, k1: int) -> mx.array | None:
        if self.blocks is None:
            return None
        past = self.q_start - self.k_start
        lo, hi = max(k0, past), k1
        if lo >= hi:  # only keys before the chunk: never in a query's block
            return None
        q_ids = self.blocks[:, :, None]
        k_ids = self.blocks[:, None, lo - past : hi - past]
        same = (q_ids == k_ids) & (q_ids >= 0)
        if lo > k0:
            pad = mx.zeros((same.shape[0], self.length, lo - k0), dtype=mx.bool_)
            same = mx.concatenate([pad, same], axis=2)
        return same

    def whole(self) -> mx.array | str | None:
        """The mask for `mx.fast.scaled_dot_product_attention`: None, "causal" or an array
        (built once and shared by every layer of the forward that uses it)."""
        if not self.needs_array:
            return "causal" if self.length > 1 else None
        if self._whole is None:
            self._whole = self.block(0, self.keys)
        return self._whole


# --------------------------------------------------------------------------- attention


def attention(
    queries: mx.array,
    keys: Any,
    values: Any,
    mask: AttentionMask | mx.array | str | None,
    *,
    scale: float = 1.0,
    cache: Any = None,
) -> mx.array:
    """softmax(q k^T * scale + mask) v for q (B, H, L, D) and k/v (B, H_kv, K, D).

    `keys`/`values` are (packed, scales, biases) tuples when `cache` is mlx-lm's
    `QuantizedKVCache`. An `AttentionMask` lets the call pick its path (`attention_path`);
    any other mask runs the plain path.
    """
    quantized = hasattr(cache, "bits")
    if not isinstance(mask, AttentionMask):
        return _plain(queries, keys, values, mask, scale, cache)
    B, H, L, D = queries.shape
    n_keys = (keys[0] if quantized else keys).shape[-2]
    path = attention_path(
        backend="cpu" if quantized else current_backend(),
        heads=H,
        kv_heads=(keys[0] if quantized else keys).shape[1],
        head_dim=D,
        queries=L,
        keys=n_keys,
        dtype_bytes=queries.dtype.size,
        array_mask=mask.needs_array,
        options=mask.options,
        batch=B,
    )
    if path.kind != "blocked":
        return _plain(queries, keys, values, mask.whole(), scale, cache)
    return blocked_attention(queries, keys, values, mask, path.block, scale=scale, cache=cache)


def _plain(queries, keys, values, mask, scale, cache) -> mx.array:
    if hasattr(cache, "bits"):
        from mlx_lm.models.base import quantized_scaled_dot_product_attention

        return quantized_scaled_dot_product_attention(
            queries, keys, values, scale=scale, mask=mask, group_size=cache.group_size,
            bits=cache.bits,
        )  # fmt: skip
    return mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=mask)


@partial(mx.compile, shapeless=True)
def _first_block(s: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    s = s.astype(mx.float32)
    m = s.max(axis=-1, keepdims=True)
    p = mx.exp(s - m)
    return m, p, p.sum(axis=-1, keepdims=True)


@partial(mx.compile, shapeless=True)
def _next_block(
    s: mx.array, m: mx.array, total: mx.array
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    s = s.astype(mx.float32)
    m_new = mx.maximum(m, s.max(axis=-1, keepdims=True))
    alpha = mx.exp(m - m_new)
    p = mx.exp(s - m_new)
    return m_new, alpha, p, total * alpha + p.sum(axis=-1, keepdims=True)


@partial(mx.compile, shapeless=True)
def _fold(acc: mx.array, alpha: mx.array, pv: mx.array) -> mx.array:
    return acc * alpha + pv.astype(mx.float32)


def key_blocks(n_keys: int, chunk_start: int, block: int) -> list[tuple[int, int]]:
    """Blocks [k0, k1) of about `block` keys; the chunk's own keys (from `chunk_start`) start
    a new block, so blocks of past keys of a causal full layer need no mask at all.

    No block has a single key (a remainder of one joins the block before it): the compiled
    softmax steps are shapeless, and a length-1 key axis would change their broadcasting.
    """
    ranges = [(0, chunk_start), (chunk_start, n_keys)]
    if min(chunk_start, n_keys - chunk_start) == 1:
        ranges = [(0, n_keys)]
    bounds: list[tuple[int, int]] = []
    for lo, hi in ranges:
        pieces = [(s, min(s + block, hi)) for s in range(lo, hi, block)]
        if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] == 1:
            pieces[-2:] = [(pieces[-2][0], hi)]
        bounds += pieces
    return bounds


def blocked_attention(
    queries: mx.array,
    keys: Any,
    values: Any,
    mask: AttentionMask,
    block: int,
    *,
    scale: float = 1.0,
    cache: Any = None,
) -> mx.array:
    """Attention over key blocks with the online softmax; same result as the plain path.

    Per block: scores in the compute dtype (as MLX's unfused path computes them), then running
    max `m`, running sum `l` and the output accumulator in float32; the exponentials are cast
    to the value dtype for the product with V (as the plain path's softmax output is). Each
    block is evaluated before the next is built: MLX allocates a kernel's output when it is
    encoded, so a lazily built loop would hold many blocks' scores at once.
    """
    B, H, L, D = queries.shape
    quantized = hasattr(cache, "bits")
    kv_heads = (keys[0] if quantized else keys).shape[1]
    n_keys = (keys[0] if quantized else keys).shape[-2]
    rep = H // kv_heads
    q = queries * mx.array(scale, dtype=queries.dtype) if scale != 1.0 else queries
    q = q.reshape(B, kv_heads, rep * L, D)  # one matmul per KV head covers its query heads

    def take(x, k0, k1):
        if quantized:
            return tuple(t[..., k0:k1, :] for t in x)
        return x[..., k0:k1, :]

    def scores_of(kb):
        if quantized:
            return mx.quantized_matmul(
                q, *kb, transpose=True, group_size=cache.group_size, bits=cache.bits
            )
        return q @ kb.swapaxes(-1, -2)

    def times_values(p, vb):
        if quantized:
            return mx.quantized_matmul(
                p, *vb, transpose=False, group_size=cache.group_size, bits=cache.bits
            )
        return p @ vb

    value_dtype = queries.dtype
    m = total = acc = None
    for k0, k1 in key_blocks(n_keys, mask.q_start - mask.k_start, block):
        s = scores_of(take(keys, k0, k1))
        visible = mask.block(k0, k1)
        if visible is not None:  # (B|1, 1, L, n) against scores viewed as (B, H_kv, rep, L, n)
            s5 = s.reshape(B, kv_heads, rep, L, k1 - k0)
            # the dtype's lowest finite value (as MLX's unfused path): a fully masked row of a
            # block then adds exp(0) terms that the next visible key's rescaling zeroes
            low = mx.array(mx.finfo(s.dtype).min, dtype=s.dtype)
            s = mx.where(visible[:, :, None], s5, low).reshape(B, kv_heads, rep * L, k1 - k0)
        if m is None:
            m, p, total = _first_block(s)
            acc = times_values(p.astype(value_dtype), take(values, k0, k1)).astype(mx.float32)
        else:
            m, alpha, p, total = _next_block(s, m, total)
            acc = _fold(acc, alpha, times_values(p.astype(value_dtype), take(values, k0, k1)))
        mx.eval(m, total, acc)
    out = (acc / total).astype(queries.dtype)
    return out.reshape(B, H, L, D)


__all__ = [
    "LayerAttention",
    "plan_attention",
    "AttentionMask",
    "AttentionOptions",
    "AttentionPath",
    "attention",
    "attention_path",
    "blocked_attention",
    "current_backend",
    "key_blocks",
    "mlx_fused_kernel",
]
