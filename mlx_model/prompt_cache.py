"""Multi-turn prompt cache: reuse the KV cache of the longest common prefix of two prompts.

Each cached conversation is a `CacheEntry`: the per-layer KV caches plus the *keys* of the
tokens they hold. A key is the token id, except for image/video/audio placeholder tokens,
whose key is a digest of the media item they stand for, so swapping a picture for another
of the same size is a miss, not a silent reuse of the old picture's keys.

Reuse is bounded three ways:

- never the whole prompt (the last token must run to give the next-token logits);
- never a prefix that ends inside an image/video block (a block's tokens attend to each
  other bidirectionally, so it must be prefilled in one piece);
- only as far back as the caches can be rewound. Full-attention caches trim freely, but a
  sliding-window `RotatingKVCache` that has wrapped cannot: the keys it would need were
  overwritten. So the engine takes a `Snapshot` of the rotating layers at the start of each
  model turn (the point where the chat format's thought stripping makes the next prompt
  diverge, and where a regenerate restarts); rewinding restores the snapshot, which holds
  views of the window buffers (copy-on-write, one window per sliding layer).

`PromptCacheStore` keeps a small LRU of entries (one per conversation key, or matched by
longest prefix when no key is given) within a byte budget from the memory plan.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import numpy as np
from mlx_lm.models.cache import RotatingKVCache

VISION_TOKEN_TYPES = (1, 2)


def common_prefix_length(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """Length of the longest common prefix of two key sequences."""
    a, b = np.asarray(a), np.asarray(b)
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def block_safe_length(length: int, token_types: Sequence[int] | np.ndarray | None) -> int:
    """`length` moved back to the start of the vision block it would cut, if any."""
    if token_types is None or length <= 0:
        return length
    types = np.asarray(token_types).reshape(-1)
    if length >= len(types):
        return length
    vision = np.isin(types, VISION_TOKEN_TYPES)
    while length > 0 and vision[length - 1] and vision[length]:
        length -= 1
    return length


def _digest(*arrays: Any) -> int:
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    # Negative keys never collide with token ids.
    return -1 - (int.from_bytes(h.digest(), "little") >> 2)


def prompt_keys(inputs: dict[str, Any], media_token_ids: dict[str, int | None]) -> np.ndarray:
    """Cache keys of a prompt: token ids, with media placeholders keyed by their content.

    `inputs` are the processor's outputs (transformers' key names); `media_token_ids` maps
    "image", "video" and "audio" to the checkpoint's placeholder ids.
    """
    ids = np.asarray(inputs["input_ids"]).reshape(-1).astype(np.int64)
    keys = ids.copy()

    def assign(token_id: int | None, items: list[tuple[int, int]]) -> None:
        if token_id is None:
            return
        slots = np.flatnonzero(ids == token_id)
        start = 0
        for count, digest in items:
            keys[slots[start : start + count]] = digest
            start += count
        keys[slots[start:]] = _digest(np.array([token_id]))  # items we could not attribute

    if inputs.get("pixel_values") is not None:
        pixels = np.asarray(inputs["pixel_values"])
        positions = np.asarray(inputs["image_position_ids"])
        items = []
        for image, pos in zip(pixels, positions, strict=True):
            valid = (pos != -1).all(axis=-1)
            items.append((int(valid.sum()), _digest(image[valid], pos[valid])))
        assign(media_token_ids.get("image"), items)
    if inputs.get("pixel_values_videos") is not None:
        frames = np.asarray(inputs["pixel_values_videos"])
        positions = np.asarray(inputs["video_position_ids"])
        items = []
        for frame, pos in zip(frames, positions, strict=True):
            valid = (pos != -1).all(axis=-1)
            items.append((int(valid.sum()), _digest(frame[valid], pos[valid])))
        assign(media_token_ids.get("video"), items)
    if inputs.get("input_features") is not None:
        features, mask = audio_features_and_mask(inputs)
        items = [(int(m.sum()), _digest(f[m])) for f, m in zip(features, mask, strict=True)]
        assign(media_token_ids.get("audio"), items)
    return keys


def audio_features_and_mask(inputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The processor's audio output as (clips, frames, dims) features and a (clips, frames)
    bool mask of the real frames (all real when the processor gave no mask)."""
    features = np.asarray(inputs["input_features"])
    if features.ndim == 2:
        features = features[None]
    mask = inputs.get("input_features_mask")
    if mask is None:
        return features, np.ones(features.shape[:2], dtype=bool)
    return features, np.asarray(mask).astype(bool).reshape(features.shape[:2])


@dataclass
class Snapshot:
    """The rotating (sliding-window) layers' state at `offset`; other layers are trimmed."""

    offset: int
    states: list[tuple[Any, ...] | None]

    @property
    def nbytes(self) -> int:
        return sum(
            s[0].nbytes + s[1].nbytes for s in self.states if s is not None and s[0] is not None
        )


def _is_rotating(cache: Any) -> bool:
    return isinstance(cache, RotatingKVCache)


def take_snapshot(caches: list[Any]) -> Snapshot:
    """Views of each rotating layer's buffers (copy-on-write: later writes copy them)."""
    states: list[tuple[Any, ...] | None] = []
    offset = int(caches[0].offset) if caches else 0
    for c in caches:
        if _is_rotating(c):
            keys = c.keys[...] if c.keys is not None else None
            values = c.values[...] if c.values is not None else None
            states.append((keys, values, int(c.offset), int(c._idx)))
        else:
            states.append(None)
    return Snapshot(offset, states)


def restore_snapshot(caches: list[Any], snapshot: Snapshot) -> None:
    """Rewind the caches to the snapshot (which stays valid for another restore)."""
    for c, state in zip(caches, snapshot.states, strict=True):
        if state is None:
            c.trim(int(c.offset) - snapshot.offset)
        else:
            keys, values, offset, idx = state
            c.keys = keys[...] if keys is not None else None
            c.values = values[...] if values is not None else None
            c.offset, c._idx = offset, idx


def _view(value: Any) -> Any:
    if isinstance(value, mx.array):
        return value[...]
    if isinstance(value, tuple | list):
        return type(value)(_view(v) for v in value)
    return value


def clone_caches(caches: list[Any]) -> list[Any]:
    """Independent caches sharing the buffers copy-on-write (a branch of a conversation)."""
    clones = []
    for c in caches:
        twin = copy.copy(c)
        for name, value in vars(c).items():
            setattr(twin, name, _view(value))
        clones.append(twin)
    return clones


def can_trim(caches: list[Any], n: int) -> bool:
    """Whether every layer can drop its last `n` tokens in place."""
    if n <= 0:
        return True
    return all(c.is_trimmable() if _is_rotating(c) else hasattr(c, "trim") for c in caches)


@dataclass
class CacheEntry:
    """One conversation's KV caches and the keys of the tokens they hold."""

    key: Hashable
    caches: list[Any]
    make_cache: Callable[[], list[Any]]
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    snapshot: Snapshot | None = None
    last_used: float = field(default_factory=time.monotonic)

    @property
    def length(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        total = self.snapshot.nbytes if self.snapshot is not None else 0
        for c in self.caches:
            try:
                total += int(c.nbytes)
            except (AttributeError, TypeError):
                total += sum(int(a.nbytes) for a in _arrays(c.state))
        return total

    def append(self, keys: Sequence[int] | np.ndarray) -> None:
        """Record that tokens with these keys were just written into the caches."""
        self.keys = np.concatenate([self.keys, np.asarray(keys, dtype=np.int64).reshape(-1)])

    def mark_snapshot(self) -> None:
        """Snapshot the current state (a point a later prompt may rewind to)."""
        if self.snapshot is not None and self.snapshot.offset == self.length:
            return
        self.snapshot = take_snapshot(self.caches)

    def rewind(self, target: int) -> int:
        """Drop tokens beyond `target` (or as close below it as the caches allow); new length."""
        current = self.length
        if target >= current:
            return current
        if can_trim(self.caches, current - target):
            for c in self.caches:
                c.trim(current - target)
            reached = target
        elif self.snapshot is not None and self.snapshot.offset <= target:
            restore_snapshot(self.caches, self.snapshot)
            reached = self.snapshot.offset
        else:
            return self.reset()
        self.keys = self.keys[:reached]
        if self.snapshot is not None and self.snapshot.offset > reached:
            self.snapshot = None
        return reached

    def reset(self) -> int:
        """Forget everything (fresh caches)."""
        self.caches = self.make_cache()
        self.keys = self.keys[:0]
        self.snapshot = None
        return 0


def _arrays(state: Any) -> list[mx.array]:
    if isinstance(state, mx.array):
        return [state]
    if isinstance(state, list | tuple):
        return [a for s in state for a in _arrays(s)]
    return []


@dataclass
class CacheLookup:
    """What `PromptCacheStore.acquire` found: the entry to extend and how much was reused."""

    entry: CacheEntry
    reused: int  # prompt tokens whose K/V are already in the entry's caches
    matched: int  # longest common prefix with the cached keys (before the bounds)


class PromptCacheStore:
    """A small LRU of conversation caches, bounded by count and by bytes."""

    def __init__(
        self,
        make_cache: Callable[[], list[Any]],
        max_entries: int = 4,
        max_bytes: int | None = None,
    ):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._make_cache = make_cache
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: dict[Hashable, CacheEntry] = {}
        self._anonymous = 0

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()

    def _new_entry(self, key: Hashable | None, branch_of: CacheEntry | None = None) -> CacheEntry:
        """A new entry: empty, or a copy-on-write branch of another conversation's cache."""
        if key is None:
            self._anonymous += 1
            key = ("anonymous", self._anonymous)
        entry = CacheEntry(key=key, caches=self._make_cache(), make_cache=self._make_cache)
        if branch_of is not None:
            entry.caches = clone_caches(branch_of.caches)
            entry.keys = branch_of.keys.copy()
            entry.snapshot = branch_of.snapshot
        self.entries[key] = entry
        return entry

    def _best_match(self, keys: np.ndarray) -> tuple[CacheEntry | None, int]:
        best, best_len = None, 0
        for entry in self.entries.values():
            n = common_prefix_length(entry.keys, keys)
            if n > best_len:
                best, best_len = entry, n
        return best, best_len

    def acquire(
        self,
        keys: np.ndarray,
        token_types: np.ndarray | None = None,
        conversation: Hashable | None = None,
    ) -> CacheLookup:
        """The entry to prefill `keys` into, rewound to the longest reusable prefix.

        With a `conversation` key the entry is that conversation's own; without one, the
        entry sharing the longest prefix is taken when it shares at least half of its tokens.
        Otherwise a new entry starts as a copy-on-write branch of the best match (so an edit
        far back, or a new chat with the same system prompt, reuses the common prefix without
        wiping the other conversation's cache).
        """
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        entry = self.entries.get(conversation) if conversation is not None else None
        if entry is not None:
            matched = common_prefix_length(entry.keys, keys)
        else:
            best, matched = self._best_match(keys)
            if conversation is None and best is not None and matched * 2 >= best.length:
                entry = best  # the same conversation, continued or regenerated
            else:  # a new conversation, or an edit far back: branch off the best match
                entry = self._new_entry(conversation, branch_of=best if matched else None)
        target = block_safe_length(min(matched, len(keys) - 1), token_types)
        reused = entry.rewind(target)
        entry.last_used = time.monotonic()
        self._evict(keep=entry)
        return CacheLookup(entry=entry, reused=reused, matched=matched)

    def discard(self, entry: CacheEntry) -> None:
        """Drop an entry whose caches may be inconsistent (a failed forward)."""
        self.entries.pop(entry.key, None)

    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())

    def _evict(self, keep: CacheEntry) -> None:
        by_age = sorted(self.entries.values(), key=lambda e: e.last_used)
        for entry in by_age:
            over_count = len(self.entries) > self.max_entries
            over_bytes = self.max_bytes is not None and self.total_bytes() > self.max_bytes
            if not (over_count or over_bytes):
                break
            if entry is not keep:
                del self.entries[entry.key]

    def enforce_budget(self, keep: CacheEntry | None = None) -> None:
        """Evict least recently used entries until the store fits its budget again."""
        if keep is None and self.entries:
            keep = max(self.entries.values(), key=lambda e: e.last_used)
        if keep is not None:
            self._evict(keep)
