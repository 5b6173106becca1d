"""Sampling options for generation: defaults from the checkpoint, mlx-lm samplers underneath.

`SamplingOptions.from_checkpoint(path)` reads `generation_config.json` (falling back to the
Gemma 4 model card: temperature 1.0, top-p 0.95, top-k 64); `options.replace(...)` applies a
request's overrides; `make_token_sampler(options)` turns them into mlx-lm's sampler and
logits processors. Temperature 0 (or `do_sample: false` in the checkpoint) is greedy.
`TokenSuppressor` masks the checkpoint's `suppress_tokens` before any sampler sees the logits.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx_lm.sample_utils import make_logits_processors, make_sampler

Sampler = Callable[[mx.array], mx.array]
LogitsProcessor = Callable[[mx.array, mx.array], mx.array]

# The Gemma 4 model card's recommendation, used when the checkpoint does not say.
MAX_SEED = 2**64 - 1  # MLX's generator takes an unsigned 64-bit seed
MODEL_CARD_DEFAULTS = {"temperature": 1.0, "top_p": 0.95, "top_k": 64}


@dataclass(frozen=True)
class SamplingOptions:
    """How the next token is chosen. `temperature == 0` means greedy (argmax)."""

    temperature: float = MODEL_CARD_DEFAULTS["temperature"]
    top_p: float = MODEL_CARD_DEFAULTS["top_p"]
    top_k: int = MODEL_CARD_DEFAULTS["top_k"]
    min_p: float = 0.0
    repetition_penalty: float | None = None
    repetition_context_size: int = 64
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def replace(self, **overrides: Any) -> SamplingOptions:
        """A copy with the given fields changed; `None` values keep the current field."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown sampling option(s): {', '.join(sorted(unknown))}")
        updated = dataclasses.replace(self, **changes)
        updated.validate()
        return updated

    def validate(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= MAX_SEED
        ):
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")

    @classmethod
    def from_generation_config(cls, config: dict[str, Any]) -> SamplingOptions:
        """Defaults from a parsed `generation_config.json` (model card values where absent)."""
        fields: dict[str, Any] = {}
        for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            if config.get(name) is not None:
                fields[name] = float(config[name])
        if config.get("top_k") is not None:
            fields["top_k"] = int(config["top_k"])
        if config.get("do_sample") is False:
            fields["temperature"] = 0.0
        if fields.get("repetition_penalty") == 1.0:
            fields["repetition_penalty"] = None
        options = cls(**fields)
        options.validate()
        return options

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> SamplingOptions:
        """Defaults for a checkpoint folder (its `generation_config.json`, if any)."""
        return cls.from_generation_config(read_generation_config(path))


def read_generation_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint's `generation_config.json` as a dict (empty when there is none)."""
    file = Path(path) / "generation_config.json"
    if not file.is_file():
        return {}
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def suppress_token_ids(generation_config: dict[str, Any]) -> list[int]:
    """The ids `generation_config.json` says never to generate (`suppress_tokens`)."""
    value = generation_config.get("suppress_tokens")
    if value is None:
        return []
    if isinstance(value, int):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(
            f"generation_config.json: `suppress_tokens` must be a list of ids, got {value!r}"
        )
    return sorted(set(value))


class TokenSuppressor:
    """A logits processor that makes the given token ids impossible (-inf), as transformers'
    `SuppressTokensLogitsProcessor`, vLLM and llama.cpp do for `suppress_tokens`.

    Built once per checkpoint; works on logits `[..., vocab]` of any dtype (the result is
    float32) in every sampling mode, greedy included, and in any path that scores tokens
    (a speculative verifier included). Call it as an mlx-lm logits processor
    (`processor(tokens, logits)`) or with `apply(logits)`.
    """

    def __init__(self, token_ids: Sequence[int], vocab_size: int):
        ids = sorted({int(t) for t in token_ids if 0 <= int(t) < vocab_size})
        self.token_ids: tuple[int, ...] = tuple(ids)
        mask = mx.zeros((vocab_size,), dtype=mx.float32)
        if ids:
            mask[mx.array(ids)] = -mx.inf
        self._mask = mask

    def __bool__(self) -> bool:
        return bool(self.token_ids)

    def apply(self, logits: mx.array) -> mx.array:
        return logits.astype(mx.float32) + self._mask

    def __call__(self, tokens: mx.array | None, logits: mx.array) -> mx.array:
        return self.apply(logits)


def eos_token_ids(generation_config: dict[str, Any], model_config: dict[str, Any]) -> set[int]:
    """The ids that end generation: generation_config's eos list, else the model config's."""
    for source in (generation_config, model_config, model_config.get("text_config") or {}):
        value = source.get("eos_token_id")
        if value is not None:
            return {int(v) for v in (value if isinstance(value, list) else [value])}
    return set()


def make_token_sampler(
    options: SamplingOptions, vocab_size: int | None = None
) -> tuple[Sampler, list[LogitsProcessor]]:
    """mlx-lm's sampler (on log-probabilities) and logits processors for these options.

    A `top_k` that would keep the whole vocabulary is a no-op (mlx-lm rejects it).
    """
    top_k = options.top_k
    if vocab_size is not None and top_k >= vocab_size:
        top_k = 0
    sampler = make_sampler(
        temp=options.temperature,
        top_p=options.top_p if options.top_p < 1.0 else 0.0,
        min_p=options.min_p,
        top_k=top_k,
    )
    processors = make_logits_processors(
        repetition_penalty=options.repetition_penalty,
        repetition_context_size=options.repetition_context_size,
    )
    return sampler, processors


def seed_random(seed: int | None) -> None:
    """Make sampling reproducible from here on (MLX's global generator; one engine thread)."""
    if seed is not None:
        mx.random.seed(int(seed))


def choose_token(
    logits: mx.array,
    history: Sequence[int] | mx.array,
    sampler: Sampler,
    processors: Sequence[LogitsProcessor],
) -> mx.array:
    """Pick the next token from the last position's logits `[1, vocab]` (lazy; not evaluated)."""
    logits = logits.astype(mx.float32)
    if processors:
        tokens = history if isinstance(history, mx.array) else mx.array(list(history))
        for processor in processors:
            logits = processor(tokens, logits)
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    return sampler(logprobs)
