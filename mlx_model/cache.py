"""KV caches for the Gemma 4 unified decoder, and a chunked-prefill planner that never cuts an image.

Uses mlx-lm's cache classes: a `RotatingKVCache` of exactly the sliding window for sliding
layers (a multi-token chunk gets the last W-1 past keys plus all its new keys, so a vision block
longer than W still sees all of its keys in its single forward), a growing `KVCache` (or an
8/4-bit `QuantizedKVCache`) for full layers, which a prefill sizes for the whole prompt at
once (`reserve_cache`). Trimming follows mlx-lm
(`mlx_lm.models.cache.can_trim_prompt_cache` / `trim_prompt_cache`): a rotating cache can only
be trimmed while it has not wrapped (offset < window).
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
from mlx_lm.models.cache import (
    KVCache,
    QuantizedKVCache,
    RotatingKVCache,
    can_trim_prompt_cache,
    trim_prompt_cache,
)

from .config import TextConfig

__all__ = [
    "KVCache",
    "block_ids_from_token_types",
    "token_types_from_input_ids",
    "QuantizedKVCache",
    "ReservableKVCache",
    "ReservableQuantizedKVCache",
    "RotatingKVCache",
    "can_trim_prompt_cache",
    "cache_offset",
    "make_cache",
    "prefill_chunks",
    "reserve_cache",
    "sliding_cache_past",
    "trim_prompt_cache",
]

KV_BITS = (4, 8)

# mm_token_type_ids values (transformers' ProcessorMixin.create_mm_token_type_ids).
TOKEN_TYPE_TEXT = 0
TOKEN_TYPE_IMAGE = 1
TOKEN_TYPE_VIDEO = 2
TOKEN_TYPE_AUDIO = 3


class _ReservesRoom:
    """Lets one of mlx-lm's growing caches be told how many tokens it is about to hold.

    mlx-lm's caches grow to `step` (256) slots past what an update needs and copy their whole
    buffers each time, so with prefill chunks longer than `step` every chunk copies the whole
    cache: quadratic in the prompt (for the 12B's full layers about 1 TiB of copying over a
    256K prefill in 512-token chunks), with one layer's cache held twice at each copy.
    After `reserve(tokens)` the next growth makes room for that many tokens at once: the
    library's own growth, with a step that large, once.
    """

    reserved = 0

    def reserve(self, tokens: int) -> None:
        """Room for `tokens` tokens in all at the next growth (until the next `reserve`)."""
        self.reserved = int(tokens)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> Any:
        held = self.keys[0] if isinstance(self.keys, tuple) else self.keys
        capacity = 0 if held is None else held.shape[-2]
        needed = self.offset + keys.shape[2]
        if not capacity < needed < self.reserved:
            return super().update_and_fetch(keys, values)
        unit = type(self).step
        self.step = -(-(self.reserved - self.offset) // unit) * unit
        try:
            return super().update_and_fetch(keys, values)
        finally:
            del self.step


class ReservableKVCache(_ReservesRoom, KVCache):
    """A full layer's `KVCache` that `reserve_cache` can size for a whole prompt."""


class ReservableQuantizedKVCache(_ReservesRoom, QuantizedKVCache):
    """A full layer's 8/4-bit `QuantizedKVCache` that `reserve_cache` can size for a prompt."""


def reserve_cache(caches: list[Any], tokens: int) -> None:
    """Tell each cache that can reserve room (the full layers') that it is
    about to hold `tokens` tokens; the others grow as they do."""
    for cache in caches:
        if isinstance(cache, _ReservesRoom):
            cache.reserve(tokens)


def make_cache(
    config: TextConfig, kv_bits: int | None = None, kv_group_size: int = 64
) -> list[Any]:
    """One cache per layer that owns K/V projections (KV-shared "reuse" layers own none).

    Sliding layers: `RotatingKVCache(max_size=window)`. Full layers: `ReservableKVCache`, or
    `ReservableQuantizedKVCache(bits=kv_bits)` when `kv_bits` is 4 or 8.
    """
    if kv_bits is not None and kv_bits not in KV_BITS:
        raise ValueError(f"kv_bits must be one of {KV_BITS} or None, got {kv_bits}")
    caches: list[Any] = []
    for spec in config.layers:
        if not spec.has_kv_projections:
            continue
        if spec.is_sliding:
            caches.append(RotatingKVCache(max_size=spec.sliding_window, keep=0))
        elif kv_bits is None:
            caches.append(ReservableKVCache())
        else:
            group = _group_size(spec.head_dim, kv_group_size)
            caches.append(ReservableQuantizedKVCache(group_size=group, bits=kv_bits))
    return caches


def _group_size(head_dim: int, wanted: int) -> int:
    for g in (wanted, 64, 32):
        if g in (32, 64, 128) and head_dim % g == 0:
            return g
    raise ValueError(f"head_dim {head_dim} cannot be quantized in groups of 32, 64 or 128")


def cache_offset(cache: list[Any] | None) -> int:
    """Number of tokens the caches have processed."""
    if not cache:
        return 0
    return int(cache[0].offset)


def sliding_cache_past(cache: Any, window: int) -> int:
    """How many past keys a sliding layer's cache returns alongside a multi-token chunk.

    A `RotatingKVCache` keeps, for a chunk of C new tokens, the last min(offset, W-1) past
    keys (mlx-lm's `_update_concat`); any other cache returns all `offset` past keys.
    """
    if isinstance(cache, RotatingKVCache):
        return min(int(cache.offset), window - 1, cache.max_size - 1)
    return int(cache.offset)


def block_ids_from_token_types(mm_token_type_ids: Any) -> np.ndarray:
    """Block index per position (0, 1, ...) for each maximal run of image/video tokens, else -1.

    Same as transformers' `get_block_sequence_ids_for_mask`; audio is never bidirectional.
    Returns shape (batch, length).
    """
    types = np.atleast_2d(_as_numpy(mm_token_type_ids))
    vision = (types == TOKEN_TYPE_IMAGE) | (types == TOKEN_TYPE_VIDEO)
    prev = np.zeros_like(vision)
    prev[:, 1:] = vision[:, :-1]
    ids = np.cumsum(vision & ~prev, axis=1) - 1
    return np.where(vision, ids, -1)


def token_types_from_input_ids(
    input_ids: Any,
    image_token_id: int | None,
    video_token_id: int | None,
    audio_token_id: int | None,
) -> np.ndarray:
    """`mm_token_type_ids` as the processor builds them, from the placeholder ids."""
    ids = np.atleast_2d(_as_numpy(input_ids))
    types = np.zeros(ids.shape, dtype=np.int64)
    for value, tid in (
        (TOKEN_TYPE_IMAGE, image_token_id),
        (TOKEN_TYPE_VIDEO, video_token_id),
        (TOKEN_TYPE_AUDIO, audio_token_id),
    ):
        if tid is not None:
            types[ids == tid] = value
    return types


def prefill_chunks(
    mm_token_type_ids: Any, chunk_size: int, start: int = 0
) -> list[tuple[int, int]]:
    """Split positions [start, N) into chunks of `chunk_size` that never cut an image/video block.

    `mm_token_type_ids` covers the whole sequence (last axis; batch rows are all respected;
    `token_types_from_input_ids` derives it from input_ids). A boundary that would fall inside
    a block moves to the block's end, so such a chunk is longer than `chunk_size`.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    blocks = block_ids_from_token_types(mm_token_type_ids)
    n = blocks.shape[-1]
    chunks: list[tuple[int, int]] = []
    s = start
    while s < n:
        e = min(s + chunk_size, n)
        # a cut at e is inside a block when positions e-1 and e belong to the same block
        while e < n and np.any((blocks[:, e - 1] >= 0) & (blocks[:, e - 1] == blocks[:, e])):
            e += 1
        chunks.append((s, e))
        s = e
    return chunks


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and not hasattr(x, "tolist"):
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError):
        return np.array(x.tolist())
