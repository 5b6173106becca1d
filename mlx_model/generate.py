"""The token loop, in mlx-lm's manner: chunked prefill, then decode, one token id at a time.

- `prefill(model, prompt, cache, ...)` runs the prompt tokens the cache lacks in chunks of
  about `chunk_size` that never cut an image or video block, yielding after each chunk
  (progress, and a point to stop at); the last chunk's logits give the first token.
- `decode(model, cache, logits, ...)` samples token after token: it yields ids and knows
  no text. The next step is scheduled before a token is handed out, so the host's work on
  that token overlaps the device's work on the next one; with logits processors the
  forward pass is started before they run, so their host work (a grammar's mask) overlaps
  it too. A stop id or `max_tokens` ends it;
  `should_stop()` is asked between steps (cancellation).
- `generate_step` chains the two for callers that want just token ids.

Sampling is `sampler(logprobs) -> token` after a chain of logits processors
`processor(tokens, logits) -> logits` (repetition penalty, suppressed tokens, grammar
masks: anything that edits the distribution before sampling). `decode` is one
`DecodeLoop`; a speculative decoder is a sibling with the same signature (plus its draft
model), chosen by the engine, never a flag inside this one.

The cache is a `mlx_model.prompt_cache.CacheEntry` (the per-layer KV caches and the keys
of the tokens they hold) or a plain list of layer caches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import mlx.core as mx
import numpy as np

from .cache import prefill_chunks, reserve_cache, token_types_from_input_ids
from .prompt import Prompt, media_for_chunk
from .prompt_cache import CacheEntry
from .sampling import LogitsProcessor, Sampler, choose_token

DEFAULT_PREFILL_CHUNK = 512


def as_entry(cache: CacheEntry | list[Any]) -> CacheEntry:
    """A plain list of layer caches wrapped as an anonymous `CacheEntry`."""
    if isinstance(cache, CacheEntry):
        return cache
    return CacheEntry(key=None, caches=cache, make_cache=lambda: cache)


def prefill(
    model: Any,
    prompt: Prompt,
    cache: CacheEntry | list[Any],
    *,
    start: int = 0,
    chunk_size: int = DEFAULT_PREFILL_CHUNK,
    snapshot_at: int | None = None,
    memory_guard: Any = None,
    should_stop: Callable[[], bool] | None = None,
    return_hidden: bool = False,
) -> Iterator[tuple[int, Any]]:
    """Run prompt tokens [start, N) into the cache; yields `(done, logits)` after each chunk.

    `done` counts the prompt tokens now in the cache; `logits` are the chunk's last
    position's (with `return_hidden`, `(logits, hidden)`: the final-norm hidden states a
    speculative loop starts from). `snapshot_at` (a position at or after `start`) makes the cache entry
    snapshot its sliding-window layers there (a point a later prompt may rewind to).
    `memory_guard.check_context(tokens)` is asked before each chunk; `should_stop()` too,
    and a true answer ends the prefill early.
    """
    entry = as_entry(cache)
    # room for the whole prompt at once, but never past what the memory plan admits
    limit = getattr(memory_guard, "context_length", None)
    reserve_cache(entry.caches, prompt.length if limit is None else min(prompt.length, limit))
    for chunk_start, chunk_end in plan_chunks(prompt, start, chunk_size, snapshot_at):
        if should_stop is not None and should_stop():
            return
        if chunk_start == snapshot_at:
            entry.mark_snapshot()
        if memory_guard is not None:
            memory_guard.check_context(chunk_end)
        yield chunk_end, forward(model, prompt, chunk_start, chunk_end, entry, return_hidden)
    if snapshot_at is not None and snapshot_at == prompt.length:
        entry.mark_snapshot()


def plan_chunks(
    prompt: Prompt, start: int, chunk_size: int, split_at: int | None = None
) -> list[tuple[int, int]]:
    """The prefill chunks of [start, N): about `chunk_size` tokens, never inside a vision
    block, with a boundary at `split_at` when it falls inside the range."""
    block_map = _token_types(prompt)[None]
    bounds = [start, prompt.length]
    if split_at is not None and start < split_at < prompt.length:
        bounds = [start, split_at, prompt.length]
    chunks: list[tuple[int, int]] = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        chunks.extend(prefill_chunks(block_map[:, :hi], chunk_size, lo))
    return chunks


def forward(
    model: Any,
    prompt: Prompt,
    start: int,
    end: int,
    entry: CacheEntry,
    return_hidden: bool = False,
) -> Any:
    """Run prompt tokens [start, end) through the model into the entry's caches; the last
    position's logits (and hidden states, with `return_hidden`)."""
    ids = prompt.ids[start:end][None].astype(np.int32)
    media = media_for_chunk(prompt, start, end)
    if prompt.token_types is not None:
        media["mm_token_type_ids"] = prompt.token_types[None, :end]
    if return_hidden:
        media["return_hidden"] = True
    out = model(mx.array(ids), cache=entry.caches, logits_to_keep=1, **media)
    mx.eval(out, [c.state for c in entry.caches])
    entry.append(prompt.keys[start:end])
    return out


def _token_types(prompt: Prompt) -> np.ndarray:
    if prompt.token_types is not None:
        return prompt.token_types
    ids = prompt.media_token_ids
    return token_types_from_input_ids(
        prompt.ids[None], ids.get("image"), ids.get("video"), ids.get("audio")
    )[0]


class DecodeLoop(Protocol):
    """The signature every decoder shares (the plain one below, a speculative one later)."""

    def __call__(
        self,
        model: Any,
        cache: CacheEntry | list[Any],
        logits: mx.array,
        *,
        sampler: Sampler,
        logits_processors: Sequence[LogitsProcessor] = (),
        history: Sequence[int] | np.ndarray | None = None,
        max_tokens: int,
        stop_ids: frozenset[int] = frozenset(),
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[int]: ...


def decode(
    model: Any,
    cache: CacheEntry | list[Any],
    logits: mx.array,
    *,
    sampler: Sampler,
    logits_processors: Sequence[LogitsProcessor] = (),
    history: Sequence[int] | np.ndarray | None = None,
    max_tokens: int,
    stop_ids: frozenset[int] = frozenset(),
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[int]:
    """Sample from `logits` (the prompt's last position) and go on token by token.

    Yields each token id; a stop id is yielded and ends the loop, as does the
    `max_tokens`-th token. Every yielded id except a final stop id or the `max_tokens`-th
    is already in the cache. `history` (the prompt's ids) is what the logits processors
    see before the generated ids; it is only kept when there are processors.
    """
    entry = as_entry(cache)
    processors = list(logits_processors)
    ids = _History(history if processors else None)
    y = choose_token(logits[:, -1, :], ids.array(), sampler, processors)
    mx.async_eval(y)
    count = 0
    while True:
        if should_stop is not None and should_stop():
            return
        token = int(y.item())
        count += 1
        done = token in stop_ids or count >= max_tokens
        if not done:
            logits = model(mx.array([[token]], dtype=mx.int32), cache=entry.caches)
            entry.append([token])
            if processors:
                # Start the forward pass now: the processors' host work (a grammar's mask)
                # overlaps it instead of delaying it.
                mx.async_eval(logits)
                ids.append(token)
            y = choose_token(logits[:, -1, :], ids.array(), sampler, processors)
            mx.async_eval(y)
        yield token
        if done:
            return


class _History:
    """The ids the logits processors see, kept on the host (a growing buffer).

    Each step's `array()` is a fresh, already-available MLX array: a processor that reads it
    (`np.asarray`) waits for nothing, where an array computed on the device (a concatenate)
    would wait behind the forward pass already queued.
    """

    def __init__(self, history: Sequence[int] | np.ndarray | None) -> None:
        self.enabled = history is not None
        start = np.asarray(history if history is not None else [], dtype=np.int32).reshape(-1)
        self._buffer = np.empty(max(2 * start.size, 256), dtype=np.int32)
        self._buffer[: start.size] = start
        self._size = start.size

    def append(self, token: int) -> None:
        if self._size == self._buffer.size:
            self._buffer = np.concatenate([self._buffer, np.empty_like(self._buffer)])
        self._buffer[self._size] = token
        self._size += 1

    def array(self) -> mx.array | None:
        return mx.array(self._buffer[: self._size]) if self.enabled else None


def generate_step(
    model: Any,
    prompt: Prompt,
    cache: CacheEntry | list[Any],
    *,
    sampler: Sampler,
    logits_processors: Sequence[LogitsProcessor] = (),
    max_tokens: int = 256,
    stop_ids: frozenset[int] = frozenset(),
    start: int = 0,
    prefill_step_size: int = DEFAULT_PREFILL_CHUNK,
    prompt_progress_callback: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[int]:
    """Prefill then decode: the token ids of one generation (mlx-lm's `generate_step`)."""
    logits, done = None, start
    for done, chunk_logits in prefill(
        model, prompt, cache, start=start, chunk_size=prefill_step_size, should_stop=should_stop
    ):
        logits = chunk_logits
        if prompt_progress_callback is not None:
            prompt_progress_callback(done, prompt.length)
    if logits is None or done < prompt.length:
        return
    yield from decode(
        model,
        cache,
        logits,
        sampler=sampler,
        logits_processors=logits_processors,
        history=prompt.ids,
        max_tokens=max_tokens,
        stop_ids=stop_ids,
        should_stop=should_stop,
    )
