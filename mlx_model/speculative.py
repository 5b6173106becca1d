"""Speculative decoding with Gemma 4's multi-token-prediction drafter: a sibling of the plain token loop.

`speculative_generate_step(model, drafter, caches, logits, hidden, ...)` starts where a plain
decode loop starts (the prompt prefilled into `caches`, the last position's logits, plus its
final-norm hidden state) and yields token ids. Each round the drafter proposes k tokens from
the target's last hidden state and K/V (`MTPDrafter`), the target verifies them in one forward
of k + 1 tokens, and the loop emits the longest agreeing prefix plus the target's own next
token; the caches are rolled back exactly over the rejected tokens, sliding-window rotating
buffers included (`rollback`).

- Greedy (`TokenSampler(temperature=0)`): a draft is accepted when it equals the target's
  argmax, so the output is the plain loop's token for token (up to float rounding at exact
  near-ties: the verify forward runs k + 1 positions at once).
- Sampling: speculative sampling (accept with min(1, p/q), else resample from
  norm(max(p - q, 0))), so the output distribution is the plain sampler's.
- Logits processors (repetition penalty, suppressed tokens, ...) are applied at every verified
  position with that position's history, exactly as the plain loop applies them, and to the
  drafter's logits too (a draft the target would never pick is not worth proposing).
- `DraftLengthController` picks k per round from the recent acceptance rate and the measured
  cost of a round against a plain step; it switches drafting off when it does not pay and
  probes again now and then.

When the generator is exhausted or closed, the caches hold the prompt and every yielded token
but the last (as after the plain loop), whatever the drafter proposed.

`SpeculativeDecodeLoop(drafter)` is this loop in the token loop's `DecodeLoop` shape: the
engine puts it in its `decode_loop` slot (`Engine.load(..., draft_model=folder)` does), gives
it the prefill's last hidden state and the turn's sampling options, and reads its
`last_stats` when the turn ends. `open_drafter(folder, target)` loads a drafter checkpoint for
a loaded target (its float type matched to the target's) and says what is wrong with the pair.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.cache import QuantizedKVCache, RotatingKVCache
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p

from .config import SLIDING, TextConfig
from .errors import CheckpointError
from .gemma4_assistant import Model as AssistantModel
from .gemma4_assistant import SharedKV, layer_kinds, sliding_window_mask
from .gemma4_unified import Model

LogitsProcessor = Callable[[mx.array, mx.array], mx.array]


class DrafterPrecisionWarning(UserWarning):
    """The drafter's and the target's precisions differ in a way that can ruin acceptance."""


# --------------------------------------------------------------------------- caches


def rollback(caches: list[Any], n: int) -> None:
    """Drop the last `n` tokens from every cache, exactly.

    Growing caches (`KVCache`, `QuantizedKVCache`) trim. A sliding-window `RotatingKVCache`
    after a multi-token forward holds its buffer in temporal order with the new tokens last
    (mlx-lm's `_update_concat`), so dropping them is a slice; the next update trims the
    buffer back to the window as usual. (mlx-lm's own `trim` only moves the write index, which
    leaves rejected keys visible in a wrapped buffer.)
    """
    if n <= 0:
        return
    for c in caches:
        if isinstance(c, RotatingKVCache):
            if c.keys is None or c._idx != c.keys.shape[2] or n > c._idx:
                raise RuntimeError(
                    "a rotating cache can only be rolled back right after a multi-token forward"
                )
            if c.offset - n >= c.max_size > c._idx - n:
                # fewer keys than the window would remain (the forward trimmed the rest):
                # the speculative loop always keeps the first token of a verified block
                raise RuntimeError("cannot roll back a whole block past a full sliding window")
            c.keys = c.keys[..., : c._idx - n, :]
            c.values = c.values[..., : c._idx - n, :]
            c.offset -= n
            c._idx -= n
        else:
            if c.trim(n) != n:
                raise RuntimeError(f"cannot roll back {n} tokens from a cache of {c.offset}")


def _offset(caches: list[Any]) -> int:
    return int(caches[0].offset)


def kv_slots(text: TextConfig) -> dict[str, int]:
    """Cache index of the last K/V-producing layer of each type: what the drafter reads
    (transformers' `shared_kv_states`)."""
    slots: dict[str, int] = {}
    slot = 0
    for spec in text.layers:
        if spec.has_kv_projections:
            slots[spec.layer_type] = slot
            slot += 1
    return slots


def target_kv(cache: Any, layer_type: str, window: int) -> SharedKV:
    """The keys/values of one target cache as a drafter layer of `layer_type` attends to them.

    Sliding layers see the `window + 1` most recent keys (`sliding_window_mask`); a rotating
    buffer is put in temporal order only when that mask is needed (attention is otherwise
    indifferent to the order of the keys).
    """
    if isinstance(cache, QuantizedKVCache):
        n = int(cache.offset)
        keys, values = (tuple(x[..., :n, :] for x in t) for t in (cache.keys, cache.values))
        quantized = cache
    elif isinstance(cache, RotatingKVCache):
        n = min(int(cache.offset), cache.keys.shape[2])
        keys, values = cache.keys, cache.values
        if layer_type == SLIDING and n > window + 1 and cache._idx != keys.shape[2]:
            keys, values = cache._temporal_order(keys), cache._temporal_order(values)
        keys, values = keys[..., :n, :], values[..., :n, :]
        quantized = None
    else:
        n = int(cache.offset)
        keys, values = cache.keys[..., :n, :], cache.values[..., :n, :]
        quantized = None
    mask = sliding_window_mask(n, window) if layer_type == SLIDING else None
    return SharedKV(keys, values, mask, quantized)


# --------------------------------------------------------------------------- drafters


class Drafter(Protocol):
    """What the loop needs from a drafter: per round, bind to the target's state, then steps."""

    def start(self, caches: list[Any], position: int) -> None:
        """A new round: the caches hold every token before `position` (the last token's)."""

    def step(self, token: mx.array, hidden: mx.array) -> tuple[mx.array, mx.array]:
        """One draft step from `token` [1] and the hidden state that predicted it [1, 1, H]:
        (logits of the next token [1, vocab], the hidden state for the next step)."""


class MTPDrafter:
    """The multi-token-prediction assistant bound to its target model.

    A step feeds `concat(target.embed(token), hidden)` to the assistant at the round's
    position, attending to the target's K/V of its last full and last sliding layer.
    """

    def __init__(self, assistant: AssistantModel, target: Model, *, warn: bool = True):
        check_compatible(assistant, target)
        self.precision_warnings = precision_mismatches(assistant, target)
        if warn:
            for message in self.precision_warnings:
                warnings.warn(message, DrafterPrecisionWarning, stacklevel=2)
        self.assistant = assistant
        self.target = target
        text = target.config.text_config
        slots = kv_slots(text)
        self._slots = {t: slots[t] for t in layer_kinds(assistant.config)}
        self._shared: dict[str, SharedKV] = {}
        self._position = 0

    def start(self, caches: list[Any], position: int) -> None:
        window = self.assistant.window
        self._shared = {t: target_kv(caches[s], t, window) for t, s in self._slots.items()}
        self._position = position

    def step(self, token: mx.array, hidden: mx.array) -> tuple[mx.array, mx.array]:
        embedded = self.target.language_model.embed(token.reshape(1, 1))
        x = mx.concatenate([embedded, hidden.astype(embedded.dtype)], axis=-1)
        hidden, logits = self.assistant(x, self._shared, self._position)
        return logits[:, -1, :], hidden


def open_drafter(folder: str | Path, target: Model) -> MTPDrafter:
    """The drafter checkpoint at `folder`, loaded for `target` (`MTPDrafter`).

    A float drafter is loaded in the target's float type, so the pair's activations agree;
    a quantized one as stored. `precision_warnings` on the result says what may still ruin
    acceptance (nothing is emitted: the caller reports it). Raises `CheckpointError` for a
    bad folder or a drafter made for another model.
    """
    from .loading import load_drafter

    raw = _read_config(Path(folder))
    quantized = bool(raw.get("quantization") or raw.get("quantization_config"))
    dtype = None if quantized else _precision(target)[0]
    assistant = load_drafter(folder, dtype=dtype, lazy=False)
    try:
        return MTPDrafter(assistant, target, warn=False)
    except ValueError as exc:
        raise CheckpointError(f"{folder}: {exc}") from None


def _read_config(folder: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # `load_drafter` names what is wrong


def check_compatible(assistant: AssistantModel, target: Model) -> None:
    """ValueError when the drafter was not made for this target (sizes that cannot work)."""
    a, t = assistant.config.text_config, target.config.text_config
    problems = []
    if assistant.config.backbone_hidden_size != t.hidden_size:
        problems.append(
            f"the drafter expects a target hidden size of {assistant.config.backbone_hidden_size}, "
            f"the model has {t.hidden_size}"
        )
    if a.vocab_size != t.vocab_size:
        problems.append(f"vocabularies differ ({a.vocab_size} vs the model's {t.vocab_size})")
    slots = kv_slots(t)
    target_specs = {spec.layer_type: spec for spec in t.layers if spec.has_kv_projections}
    for spec in a.layers:
        source = target_specs.get(spec.layer_type)
        if source is None or spec.layer_type not in slots:
            problems.append(f"the model has no {spec.layer_type} layer to share keys/values")
        elif spec.head_dim != source.head_dim:
            problems.append(
                f"{spec.layer_type} head size {spec.head_dim} differs from the model's "
                f"{source.head_dim}"
            )
        elif a.num_attention_heads % source.num_key_value_heads:
            problems.append(
                f"{a.num_attention_heads} drafter heads cannot share the model's "
                f"{source.num_key_value_heads} {spec.layer_type} key/value heads"
            )
    if problems:
        raise ValueError(
            "this drafter does not fit the model: " + "; ".join(dict.fromkeys(problems))
        )


def _precision(model: nn.Module) -> tuple[mx.Dtype, int | None]:
    """(activation dtype, bits of its quantized matrices or None)."""
    bits = None
    for _, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear | nn.QuantizedEmbedding):
            bits = module.bits if bits is None else min(bits, module.bits)
    norm = model.language_model.norm if isinstance(model, Model) else model.model.norm
    return norm.weight.dtype, bits


def precision_mismatches(assistant: AssistantModel, target: Model) -> list[str]:
    """Why this pairing may accept far fewer drafts than the drafter was trained for.

    - different float types for activations: the drafter reads the target's hidden states
      and keys/values; float16 against bfloat16 means values out of range or rounded
      differently from training;
    - a drafter quantized more coarsely than its target (or quantized beside a float
      target): its proposals stop matching what the target computes. A float drafter
      beside a quantized target is the published pairing and is not flagged.
    """
    (a_dtype, a_bits), (t_dtype, t_bits) = _precision(assistant), _precision(target)
    found = []
    if a_dtype != t_dtype:
        found.append(
            f"drafter activations are {a_dtype}, the model's {t_dtype}: convert the drafter "
            "to the model's float type"
        )
    if a_bits is not None and (t_bits is None or a_bits < t_bits):
        model = "float weights" if t_bits is None else f"{t_bits}-bit weights"
        found.append(
            f"the drafter is quantized to {a_bits} bits beside a model with {model}: "
            "acceptance can collapse; use a drafter at least as precise as the model"
        )
    return found


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class TokenSampler:
    """How a token is chosen from processed logits: argmax (`temperature == 0`) or a draw
    from mlx-lm's sampling distribution (top-p, min-p, top-k on the log-probabilities, then
    softmax at `temperature`), whose probabilities speculative sampling needs explicitly."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @classmethod
    def from_options(cls, options: Any, vocab_size: int | None = None) -> TokenSampler:
        """From `sampling.SamplingOptions` (a `top_k` covering the vocabulary is no filter)."""
        top_k = options.top_k
        if vocab_size is not None and top_k >= vocab_size:
            top_k = 0
        return cls(options.temperature, options.top_p, top_k, options.min_p)

    def log_probs(self, logits: mx.array) -> mx.array:
        """Normalized log-probabilities [N, V] of the distribution tokens are drawn from."""
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        if 0 < self.top_p < 1.0:
            logprobs = apply_top_p(logprobs, self.top_p)
        if self.min_p != 0.0:
            logprobs = apply_min_p(logprobs, self.min_p, 1)
        if self.top_k > 0:
            logprobs = apply_top_k(logprobs, self.top_k)
        scaled = logprobs * (1 / self.temperature)
        return scaled - mx.logsumexp(scaled, axis=-1, keepdims=True)


def _process(
    processors: Sequence[LogitsProcessor], history: mx.array | None, logits: mx.array
) -> mx.array:
    logits = logits.astype(mx.float32)
    for processor in processors:
        logits = processor(history, logits)
    return logits


def _extend(history: mx.array | None, tokens: Sequence[mx.array]) -> mx.array | None:
    if history is None or not tokens:
        return history
    return mx.concatenate([history, *[t.reshape(-1).astype(history.dtype) for t in tokens]])


# --------------------------------------------------------------------------- draft length


@dataclass
class DraftPolicy:
    """How many tokens to draft per round.

    Fixed (`adaptive=False`: always `max_draft`) or adaptive: the per-token acceptance rate
    is estimated from recent rounds (decayed counts with a prior), the expected tokens per
    round (1 - a^(k+1)) / (1 - a) are weighed against the cost of a round with k drafts
    relative to a plain step (measured while decoding when `measure_costs`, else the priors
    `draft_cost` per drafted token and `verify_cost` per verified extra token), and the k with
    the best throughput wins; below `min_speedup` drafting stops, and every `probe_interval`
    plain tokens one round with k = 1 checks whether it pays again.
    """

    max_draft: int = 4
    adaptive: bool = True
    prior_acceptance: float = 0.6
    prior_weight: float = 4.0
    decay: float = 0.85
    draft_cost: float = 0.1
    verify_cost: float = 0.05
    measure_costs: bool = True
    min_speedup: float = 1.05
    probe_interval: int = 16

    def __post_init__(self) -> None:
        if self.max_draft < 1:
            raise ValueError(f"max_draft must be >= 1, got {self.max_draft}")
        if not 0 < self.prior_acceptance < 1:
            raise ValueError("prior_acceptance must be in (0, 1)")


class DraftLengthController:
    """Chooses k for the next round from observed acceptance and costs (see `DraftPolicy`)."""

    def __init__(self, policy: DraftPolicy):
        self.policy = policy
        # the prior as pseudo-counts, which fade like observations do
        self._accepted = policy.prior_weight * policy.prior_acceptance
        self._rejected = policy.prior_weight * (1 - policy.prior_acceptance)
        self._plain_s: float | None = None
        self._round_s: dict[int, float] = {}
        self._seen: set[int] = set()
        self._plain_since_probe = 0
        self.enabled = self._best_speedup() >= policy.min_speedup

    @property
    def acceptance(self) -> float:
        """Estimated probability that one drafted token is accepted (geometric model: a
        round of k drafts with n accepted is n successes and, if n < k, one failure)."""
        return self._accepted / (self._accepted + self._rejected)

    def relative_cost(self, k: int) -> float:
        """Cost of a round with k drafts in plain steps (measured when both are known)."""
        p = self.policy
        if p.measure_costs and self._plain_s and k in self._round_s:
            return self._round_s[k] / self._plain_s
        return 1.0 + k * (p.draft_cost + p.verify_cost)

    def expected_speedup(self, k: int) -> float:
        a = min(self.acceptance, 0.999)
        tokens = (1 - a ** (k + 1)) / (1 - a)
        return tokens / self.relative_cost(k)

    def next_k(self) -> int:
        p = self.policy
        if not p.adaptive:
            return p.max_draft
        if p.measure_costs and self._plain_s is None:
            return 0  # one plain step first: the unit every cost is measured in
        if not self.enabled:
            if self._plain_since_probe >= p.probe_interval:
                self._plain_since_probe = 0
                return 1
            return 0
        best = max(range(1, p.max_draft + 1), key=self.expected_speedup)
        return best

    def observe_round(self, k: int, accepted: int, seconds: float) -> None:
        p = self.policy
        self._accepted = p.decay * self._accepted + accepted
        self._rejected = p.decay * self._rejected + (1 if accepted < k else 0)
        self._time(self._round_s, k, seconds)
        self.enabled = self._best_speedup() >= p.min_speedup

    def _best_speedup(self) -> float:
        return max(self.expected_speedup(k) for k in range(1, self.policy.max_draft + 1))

    def observe_plain(self, seconds: float) -> None:
        self._plain_since_probe += 1
        if self._plain_s is None:
            self._plain_s = seconds
        else:
            self._plain_s = 0.8 * self._plain_s + 0.2 * seconds

    def _time(self, table: dict[int, float], k: int, seconds: float) -> None:
        if not self.policy.measure_costs:
            return
        if k not in self._seen:  # the first round of a size warms kernels up: not counted
            self._seen.add(k)
            return
        table[k] = seconds if k not in table else 0.8 * table[k] + 0.2 * seconds


# --------------------------------------------------------------------------- stats


@dataclass
class SpeculativeStats:
    """Per-turn counts of the speculative loop."""

    drafted: int = 0
    accepted: int = 0
    rounds: int = 0  # verify rounds (k >= 1)
    plain_steps: int = 0
    tokens: int = 0
    decode_s: float = 0.0
    draft_lengths: dict[int, int] = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_accepted_length(self) -> float:
        """Drafted tokens accepted per verify round."""
        return self.accepted / self.rounds if self.rounds else 0.0

    @property
    def tokens_per_second(self) -> float:
        """Decode throughput: tokens after the first over the time spent producing them."""
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 and self.tokens > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "drafted": self.drafted,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "mean_accepted_length": self.mean_accepted_length,
            "rounds": self.rounds,
            "plain_steps": self.plain_steps,
            "tokens": self.tokens,
            "decode_tokens_per_s": self.tokens_per_second,
            "draft_lengths": dict(sorted(self.draft_lengths.items())),
        }

    def summary(self) -> dict[str, Any]:
        """A turn's counts as `GenerationStats.extra["speculative"]` carries them (JSON-ready:
        draft lengths keyed by strings; decode speed is the stats' own `decode_tps`)."""
        return {
            "drafted": self.drafted,
            "accepted": self.accepted,
            "acceptance_rate": round(self.acceptance_rate, 4),
            "mean_accepted_length": round(self.mean_accepted_length, 4),
            "rounds": self.rounds,
            "plain_steps": self.plain_steps,
            "draft_lengths": {str(k): v for k, v in sorted(self.draft_lengths.items())},
        }


# --------------------------------------------------------------------------- the loop


def speculative_generate_step(
    model: Model,
    drafter: Drafter,
    caches: list[Any],
    logits: mx.array,
    hidden: mx.array,
    *,
    sampler: TokenSampler | None = None,
    logits_processors: Sequence[LogitsProcessor] = (),
    history: Sequence[int] | mx.array | None = None,
    max_tokens: int = 256,
    eos_token_ids: Collection[int] = (),
    policy: DraftPolicy | None = None,
    stats: SpeculativeStats | None = None,
) -> Iterator[int]:
    """Yield up to `max_tokens` token ids, drafting with `drafter` and verifying with `model`.

    `caches` hold the prompt; `logits` [1, (1,) V] and `hidden` [1, 1, H] are the target's
    output at the prompt's last position. `history` is every token id in the caches (what
    `logits_processors` see, as in the plain loop). Generation stops after an id in
    `eos_token_ids` (yielded), after `max_tokens`, or when the consumer closes the generator.
    The caches then hold the prompt and all yielded ids but the last; when the consumer closes
    it while drafting is off, the plain step on the last id has already started (as in the
    plain loop) and the caches hold that id too: `caches[0].offset` tells. `stats` is filled
    in as it goes.
    """
    sampler = sampler or TokenSampler()
    stats = stats if stats is not None else SpeculativeStats()
    controller = DraftLengthController(policy or DraftPolicy())
    processors = list(logits_processors)
    if processors:
        hist = history if isinstance(history, mx.array) else mx.array(list(history or []))
        hist = hist.reshape(-1).astype(mx.int32)
    else:
        hist = None
    eos = {int(e) for e in eos_token_ids}
    base = _offset(caches)
    emitted = 0

    def choose(row: mx.array, context: mx.array | None) -> tuple[mx.array, mx.array | None]:
        """(token [1], its distribution's log-probs [1, V] or None when greedy)."""
        row = _process(processors, context, row)
        if sampler.greedy:  # argmax of the log-probabilities, as mlx-lm's greedy sampler
            return mx.argmax(row - mx.logsumexp(row, axis=-1, keepdims=True), axis=-1), None
        logp = sampler.log_probs(row)
        return mx.random.categorical(logp), logp

    if logits.ndim == 3:
        logits = logits[:, -1, :]
    hidden = hidden[:, -1:]
    token, _ = choose(logits, hist)
    token_id = int(token.item())
    start = time.perf_counter()
    pending = None  # a plain step on the token being yielded, started before yielding it
    try:
        while True:
            emitted += 1
            stats.tokens = emitted
            stop = token_id in eos or emitted >= max_tokens
            if not stop:
                hist = _extend(hist, [mx.array([token_id])])
                k = min(controller.next_k(), max_tokens - emitted)
                if k <= 0:  # as the plain loop: the step runs while the consumer works
                    t0 = time.perf_counter()
                    out, hidden = model(
                        mx.array([[token_id]], dtype=mx.int32), cache=caches, return_hidden=True
                    )
                    token, _ = choose(out[:, -1, :], hist)
                    mx.async_eval(token, hidden)
                    pending = token
            yield token_id
            if stop:
                return
            if pending is not None:
                token_id, pending = int(pending.item()), None
                stats.plain_steps += 1
                controller.observe_plain(time.perf_counter() - t0)
                stats.decode_s = time.perf_counter() - start
                continue

            t0 = time.perf_counter()
            drafter.start(caches, _offset(caches))
            drafts: list[mx.array] = []
            draft_logp: list[mx.array] = []
            step_token, step_hidden = mx.array([token_id], dtype=mx.int32), hidden
            for _ in range(k):
                row, step_hidden = drafter.step(step_token, step_hidden)
                step_token, logq = choose(row, _extend(hist, drafts))
                drafts.append(step_token.astype(mx.int32))
                if logq is not None:
                    draft_logp.append(logq)
            inputs = mx.concatenate([mx.array([token_id], dtype=mx.int32), *drafts])[None]
            out, verify_hidden = model(inputs, cache=caches, return_hidden=True)
            if processors:  # each position with its own history
                rows = mx.concatenate(
                    [
                        _process(processors, _extend(hist, drafts[:i]), out[:, i, :])
                        for i in range(k + 1)
                    ]
                )
            else:
                rows = out[0].astype(mx.float32)
            draft_ids = mx.concatenate(drafts)
            if sampler.greedy:
                targets = mx.argmax(rows - mx.logsumexp(rows, axis=-1, keepdims=True), axis=-1)
                mx.eval(draft_ids, targets)
                d, t = draft_ids.tolist(), targets.tolist()
                n = 0
                while n < k and d[n] == t[n]:
                    n += 1
                bonus = t[n]
            else:
                n, bonus = _speculative_sample(
                    draft_ids, mx.concatenate(draft_logp), sampler.log_probs(rows)
                )
                d = draft_ids.tolist()
            rollback(caches, k - n)
            hidden = verify_hidden[:, n : n + 1]
            stats.rounds += 1
            stats.drafted += k
            stats.accepted += n
            stats.draft_lengths[k] = stats.draft_lengths.get(k, 0) + 1
            controller.observe_round(k, n, time.perf_counter() - t0)
            stats.decode_s = time.perf_counter() - start
            for draft in d[:n]:
                emitted += 1
                stats.tokens = emitted
                yield draft
                if draft in eos or emitted >= max_tokens:
                    return
            hist = _extend(hist, [mx.array(d[:n])]) if n else hist
            token_id = bonus
    finally:
        # A plain step already started on the last token leaves it in the caches, as the
        # plain loop does when its consumer stops it; anything else beyond is rolled back.
        excess = _offset(caches) - (base + max(emitted - 1, 0)) - (pending is not None)
        if excess > 0:
            rollback(caches, excess)


class SpeculativeDecodeLoop:
    """`speculative_generate_step` in the token loop's `DecodeLoop` shape (see
    `mlx_model.generate`): what the engine's `decode_loop` slot holds when a drafter is loaded.

    Beyond the plain loop's arguments it takes `hidden` (the prefill's final-norm hidden state
    at the prompt's last position; `uses_hidden_state` tells the engine to ask the prefill for
    it) and `sampling` (the turn's `SamplingOptions`: speculative sampling needs the sampling
    distribution itself, not just a sampler). Without `hidden` it is the plain loop. The cache
    entry's keys follow what the caches hold once the loop ends or is closed; `should_stop()`
    is asked before each token is handed out. `last_stats` holds the last turn's counts.
    """

    uses_hidden_state = True

    def __init__(self, drafter: Drafter, policy: DraftPolicy | None = None):
        self.drafter = drafter
        self.policy = policy or DraftPolicy()
        self.last_stats = SpeculativeStats()

    def __call__(
        self,
        model: Any,
        cache: Any,
        logits: mx.array,
        *,
        sampler: Callable[[mx.array], mx.array],
        logits_processors: Sequence[LogitsProcessor] = (),
        history: Sequence[int] | np.ndarray | None = None,
        max_tokens: int,
        stop_ids: Collection[int] = frozenset(),
        should_stop: Callable[[], bool] | None = None,
        hidden: mx.array | None = None,
        sampling: Any = None,
    ) -> Iterator[int]:
        from .generate import as_entry, decode

        self.last_stats = stats = SpeculativeStats()
        if hidden is None:
            yield from decode(
                model, cache, logits, sampler=sampler, logits_processors=logits_processors,
                history=history, max_tokens=max_tokens, stop_ids=frozenset(stop_ids),
                should_stop=should_stop,
            )  # fmt: skip
            return
        entry = as_entry(cache)
        vocab = int(logits.shape[-1])
        token_sampler = (
            TokenSampler() if sampling is None else TokenSampler.from_options(sampling, vocab)
        )
        start = _offset(entry.caches)
        received: list[int] = []
        inner = speculative_generate_step(
            model,
            self.drafter,
            entry.caches,
            logits,
            hidden,
            sampler=token_sampler,
            logits_processors=logits_processors,
            history=mx.array(np.asarray(history if history is not None else [], dtype=np.int32)),
            max_tokens=max_tokens,
            eos_token_ids=stop_ids,
            policy=self.policy,
            stats=stats,
        )
        try:
            for token in inner:
                received.append(token)
                if should_stop is not None and should_stop():
                    return
                yield token
        finally:
            inner.close()  # rolls the caches back to what was handed out
            entry.append(received[: _offset(entry.caches) - start])


def _speculative_sample(
    drafts: mx.array, draft_logp: mx.array, target_logp: mx.array
) -> tuple[int, int]:
    """Accept each draft with probability min(1, p/q); at the first rejection draw from
    norm(max(p - q, 0)), after k acceptances from p. Returns (accepted, next token)."""
    k = drafts.shape[0]
    p = mx.exp(target_logp)  # [k + 1, V]
    q = mx.exp(draft_logp)  # [k, V]
    idx = drafts[:, None]
    p_d = mx.take_along_axis(p[:k], idx, axis=-1)[:, 0]
    q_d = mx.take_along_axis(q, idx, axis=-1)[:, 0]
    accept = mx.random.uniform(shape=(k,)) * q_d < p_d
    residual = mx.maximum(p[:k] - q, 0)
    mass = residual.sum(axis=-1, keepdims=True)
    # p == q leaves no residual (then rejection has probability 0): fall back to p
    residual = mx.where(mass > 0, residual, p[:k])
    candidates = mx.random.categorical(mx.log(mx.concatenate([residual, p[k:]])))
    mx.eval(accept, candidates)
    acc = accept.tolist()
    n = 0
    while n < k and acc[n]:
        n += 1
    return n, int(candidates[n].item())


__all__ = [
    "DraftLengthController",
    "DraftPolicy",
    "Drafter",
    "DrafterPrecisionWarning",
    "MTPDrafter",
    "SpeculativeDecodeLoop",
    "SpeculativeStats",
    "TokenSampler",
    "check_compatible",
    "kv_slots",
    "open_drafter",
    "precision_mismatches",
    "rollback",
    "speculative_generate_step",
    "target_kv",
]
