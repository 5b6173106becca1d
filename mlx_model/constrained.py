"""Constrained decoding: a grammar's token mask, per request, applied to MLX logits.

```python
vocab = GrammarVocabulary.for_tokenizer(processor.tokenizer, model_vocab_size)  # once
constraint = vocab.constraint(OutputConstraint.json_schema(schema), thinking=True)
processors.append(constraint.logits_processor())  # one per model turn, chains with others
```

`TokenConstraint` follows the answer token by token (llguidance's `LLMatcher` under it):

- with thinking on, the model may open the thought channel first; thinking runs free (only
  the turn-ending tokens are masked, so an answer must follow) and the grammar applies
  from the token after `<channel|>`; without thinking it applies from the first token;
- `next_mask()` is the bitmask of allowed ids (one bit per id, int32 words, as
  llguidance writes it); `apply_token_mask(logits, mask)` turns disallowed logits into
  -inf on the device (the bits are unpacked by MLX, so only the packed words travel);
- `advance(id)` consumes a sampled id (a disallowed one raises `GrammarError`);
  `rollback(n)` undoes the last n;
- speculative decoding: `draft_masks(drafted)` gives the mask at every drafted position
  (and the one after) in one array without changing the state; after verification
  `advance` the accepted ids (rejected drafts were never consumed).

`logits_processor()` is an mlx-lm-style `(tokens, logits) -> logits` callable: it reads
the ids generated since its first call from `tokens` (the prompt plus the ids so far, as
mlx-lm's `generate_step` and our engine pass them), so it needs no other wiring. On its
first call it also reads the prompt: one that ends inside an open thought channel (the
chat template opens one after a tool response when thinking is on) starts in thinking.
It reads `tokens` on the host without evaluating anything new, so a token loop that has
already started the next forward pass (`mx.async_eval`) computes the mask meanwhile.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import mlx.core as mx
import numpy as np

from .grammar import GrammarError, GrammarTokens, OutputConstraint, grammar_text
from .sampling import LogitsProcessor

__all__ = [
    "GrammarError",
    "GrammarVocabulary",
    "OutputConstraint",
    "TokenConstraint",
    "apply_token_mask",
]

_VOCABULARIES: weakref.WeakKeyDictionary[Any, dict[int, GrammarVocabulary]] = (
    weakref.WeakKeyDictionary()
)
_VOCABULARIES_LOCK = threading.Lock()
_SHIFTS: mx.array | None = None


class GrammarVocabulary:
    """A tokenizer's vocabulary as llguidance sees it, and the grammars compiled over it.

    Building it walks every token (about a second for Gemma's 262K); `for_tokenizer`
    keeps one per tokenizer. Compiled grammars are kept in a small LRU, so requests
    with the same schema only copy a ready matcher.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, *, cache_size: int = 16):
        import llguidance

        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        if tokenizer.vocab_size > self.vocab_size:
            raise GrammarError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                f"{self.vocab_size} logits"
            )
        self.ids = GrammarTokens.from_tokenizer(tokenizer)
        s = tokenizer.special
        self.thought_start = tokenizer.require_id(s.soc_token)
        self.thought_end = tokenizer.require_id(s.eoc_token)
        self.stop_ids = tuple(int(i) for i in tokenizer.eos_token_ids)
        eos = tokenizer.token_to_id(s.eos_token)
        self.ll_tokenizer = llguidance.LLTokenizer(
            tokenizer.backend.to_str(),
            n_vocab=self.vocab_size,
            eos_token=eos if eos is not None else self.ids.end_of_turn,
        )
        self.words = (self.vocab_size + 31) // 32
        self._compiled: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, vocab_size: int) -> GrammarVocabulary:
        """The shared vocabulary of this tokenizer (built on first use)."""
        with _VOCABULARIES_LOCK:
            per_size = _VOCABULARIES.setdefault(tokenizer, {})
            vocabulary = per_size.get(int(vocab_size))
            if vocabulary is None:
                vocabulary = per_size[int(vocab_size)] = cls(tokenizer, vocab_size)
            return vocabulary

    def matcher(self, constraint: OutputConstraint) -> Any:
        """A fresh `llguidance.LLMatcher` for the constraint; `GrammarError` if it does not compile."""
        import llguidance

        grammar = grammar_text(constraint, self.ids)
        with self._lock:
            template = self._compiled.get(grammar)
            if template is not None:
                self._compiled.move_to_end(grammar)
        if template is None:
            template = llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
            if template.is_error():
                raise GrammarError(_grammar_message(template.get_error()))
            with self._lock:
                self._compiled[grammar] = template
                while len(self._compiled) > self._cache_size:
                    self._compiled.popitem(last=False)
        return template.deep_copy()

    def constraint(
        self, constraint: OutputConstraint, *, thinking: bool = False, in_thinking: bool = False
    ) -> TokenConstraint:
        """Per-request state for the constraint (see `TokenConstraint`)."""
        return TokenConstraint(self, self.matcher(constraint), thinking, in_thinking)


class TokenConstraint:
    """Which ids may come next in one answer; see the module docstring.

    `thinking`: the model may open the thought channel before the answer.
    `in_thinking`: the prompt already ends inside an open thought channel.
    """

    def __init__(
        self,
        vocabulary: GrammarVocabulary,
        matcher: Any,
        thinking: bool = False,
        in_thinking: bool = False,
    ):
        self.vocabulary = vocabulary
        self.matcher = matcher
        self._phase = "thinking" if in_thinking else ("before" if thinking else "answer")
        # One entry per consumed id: (phase before it, whether the matcher consumed it).
        self._history: list[tuple[str, bool]] = []
        self._mask = np.zeros((1, vocabulary.words), dtype=np.int32)
        self._thinking_mask = _full_mask(vocabulary.words, vocabulary.vocab_size)
        for token_id in vocabulary.stop_ids:
            _clear_bit(self._thinking_mask, token_id)

    @property
    def in_answer(self) -> bool:
        """True once the grammar applies (the thought channel, if any, is closed)."""
        return self._phase == "answer"

    @property
    def is_complete(self) -> bool:
        """True when the answer is a whole document of the grammar (nothing more may follow)."""
        return self._phase == "answer" and self.matcher.is_accepting()

    @property
    def consumed(self) -> int:
        """How many ids have been consumed (thinking included)."""
        return len(self._history)

    def follow_prompt(self, prompt_ids: Sequence[int] | np.ndarray) -> None:
        """Start in thinking when the prompt ends inside an open thought channel (before
        anything is consumed; the thought runs free, the grammar applies after it)."""
        if self._history or self._phase == "thinking":
            return
        ids = np.asarray(prompt_ids).reshape(-1)
        opened = np.flatnonzero(ids == self.vocabulary.thought_start)
        closed = np.flatnonzero(ids == self.vocabulary.thought_end)
        if opened.size and (not closed.size or closed[-1] < opened[-1]):
            self._phase = "thinking"

    def next_mask(self) -> np.ndarray:
        """The allowed ids for the next position: int32 words, bit `i % 32` of word `i // 32`."""
        return self._mask_in(self._phase).copy()

    def _mask_in(self, phase: str) -> np.ndarray:
        if phase == "thinking":
            return self._thinking_mask
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(self.matcher, self._mask, 0)
        if phase == "before":
            _set_bit(self._mask, self.vocabulary.thought_start)
        return self._mask

    def advance(self, token_id: int) -> None:
        """Consume one generated id; `GrammarError` if the grammar does not allow it."""
        token_id = int(token_id)
        phase = self._phase
        v = self.vocabulary
        if phase == "before" and token_id == v.thought_start:
            self._history.append((phase, False))
            self._phase = "thinking"
            return
        if phase == "thinking":
            self._history.append((phase, False))
            if token_id == v.thought_end:
                self._phase = "answer"
            return
        if self.matcher.is_stopped():
            # The grammar has ended (a stop id was consumed); ids after it (drafts a
            # speculative loop verifies) do not reach the matcher, so `rollback` must not
            # count them as its.
            self._history.append((phase, False))
            return
        if not self.matcher.consume_token(token_id):
            message = self.matcher.get_error() or "not allowed here"
            raise GrammarError(f"token {token_id} breaks the grammar: {message}")
        self._history.append((phase, True))
        self._phase = "answer"

    def advance_many(self, token_ids: Iterable[int]) -> None:
        for token_id in token_ids:
            self.advance(token_id)

    def rollback(self, count: int) -> None:
        """Undo the last `count` consumed ids (a speculative draft the model rejected)."""
        if count < 0 or count > len(self._history):
            raise ValueError(f"cannot roll back {count} of {len(self._history)} ids")
        undone = self._history[len(self._history) - count :]
        del self._history[len(self._history) - count :]
        matched = sum(1 for _, consumed in undone if consumed)
        if matched and not self.matcher.rollback(matched):
            raise GrammarError(f"the grammar could not roll back: {self.matcher.get_error()}")
        if undone:
            self._phase = undone[0][0]

    def draft_masks(self, drafted: Sequence[int]) -> np.ndarray:
        """Masks for verifying a draft: row i is the mask after `drafted[:i]` (len + 1 rows).

        The state is unchanged afterwards. Rows after a drafted id the grammar refuses
        repeat the mask that refused it (the verifier rejects the draft there anyway).
        """
        masks = np.zeros((len(drafted) + 1, self.vocabulary.words), dtype=np.int32)
        advanced = 0
        try:
            for i in range(len(drafted) + 1):
                masks[i] = self._mask_in(self._phase)
                if i == len(drafted):
                    break
                if not _has_bit(masks[i], int(drafted[i])):
                    masks[i + 1 :] = masks[i]
                    break
                self.advance(drafted[i])
                advanced += 1
        finally:
            self.rollback(advanced)
        return masks

    def logits_processor(self) -> LogitsProcessor:
        """An mlx-lm logits processor for one model turn (see the module docstring)."""
        return _ConstraintProcessor(self)


class _ConstraintProcessor:
    """`(tokens, logits) -> logits`: follow the ids in `tokens`, then mask the logits.

    `tokens` may also shrink or change (a speculative loop verifies drafted ids, then goes
    on from the accepted ones): the constraint is rolled back to the longest common prefix
    with the ids it consumed, then advanced over the rest.
    """

    def __init__(self, constraint: TokenConstraint):
        self.constraint = constraint
        self.start: int | None = None
        self.ids: list[int] = []  # the ids after `start` the constraint has consumed

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        # Read on the host: slicing the MLX array would queue behind a running forward pass.
        history = np.asarray(tokens).reshape(-1) if tokens is not None else np.zeros(0, np.int32)
        length = int(history.shape[0])
        if self.start is None:
            self.start = length - self.constraint.consumed
            self.constraint.follow_prompt(history[: self.start])
        current = history[self.start :].tolist() if length > self.start else []
        if not self.ids and current and self.constraint.consumed == len(current):
            self.ids = list(current)  # consumed before this processor was first called
        common = 0
        for a, b in zip(self.ids, current, strict=False):
            if a != b:
                break
            common += 1
        if common < len(self.ids):
            self.constraint.rollback(len(self.ids) - common)
        self.constraint.advance_many(current[common:])
        self.ids = current
        return apply_token_mask(logits, self.constraint.next_mask())


def apply_token_mask(logits: mx.array, mask: np.ndarray) -> mx.array:
    """`logits` with every id the bitmask does not allow set to -inf.

    `logits` is `[..., vocab]`; `mask` is `[words]` or one row per leading position
    (`[positions, words]`, e.g. from `draft_masks`). Bits are unpacked by MLX.
    """
    global _SHIFTS
    if _SHIFTS is None:
        _SHIFTS = mx.arange(32, dtype=mx.uint32)
    vocab = logits.shape[-1]
    words = mx.array(np.ascontiguousarray(mask).view(np.uint32))
    bits = mx.right_shift(mx.expand_dims(words, -1), _SHIFTS) & 1
    allowed = bits.reshape(*words.shape[:-1], -1)[..., :vocab].astype(mx.bool_)
    if allowed.ndim < logits.ndim:
        allowed = allowed.reshape((1,) * (logits.ndim - allowed.ndim) + allowed.shape)
    return mx.where(allowed, logits, mx.array(-mx.inf, dtype=logits.dtype))


def allowed_ids(mask: np.ndarray, vocab_size: int) -> np.ndarray:
    """The ids a one-row bitmask allows (for tests and debugging)."""
    bits = np.unpackbits(np.ascontiguousarray(mask).reshape(-1).view(np.uint8), bitorder="little")
    return np.flatnonzero(bits[:vocab_size])


def _grammar_message(error: str) -> str:
    first = error.strip().splitlines()[0] if error.strip() else "invalid grammar"
    return f"the output format cannot be compiled: {first}"


def _full_mask(words: int, vocab_size: int) -> np.ndarray:
    mask = np.zeros((1, words), dtype=np.int32)
    bits = np.zeros(words * 32, dtype=np.uint8)
    bits[:vocab_size] = 1
    mask[0] = np.packbits(bits, bitorder="little").view(np.int32)
    return mask


def _word_bit(token_id: int) -> tuple[int, np.int32]:
    return token_id // 32, np.uint32(1 << (token_id % 32)).view(np.int32)


def _set_bit(mask: np.ndarray, token_id: int) -> None:
    word, bit = _word_bit(token_id)
    mask.reshape(-1)[word] |= bit


def _clear_bit(mask: np.ndarray, token_id: int) -> None:
    word, bit = _word_bit(token_id)
    mask.reshape(-1)[word] &= ~bit


def _has_bit(mask: np.ndarray, token_id: int) -> bool:
    word, bit = _word_bit(token_id)
    return bool(mask.reshape(-1)[word] & bit)
