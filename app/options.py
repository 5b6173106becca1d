"""Generation options: one typed object with the single set of limits and defaults.

`GenerationOptions` is what every front end builds (the HTTP server from a request body,
the CLI from its flags, the GUI from the settings) and what both engines take unchanged.
It validates itself when it is made, so an invalid object never travels: the edges catch
`OptionError`, which names the option and its rule, and answer in their own terms (a 400,
a command-line error, a settings message).

Sampling fields left at None mean "the model's own default" (the checkpoint's
`generation_config.json` for the local engine, the server's default for a remote one).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlx_model.processing.image import SUPPORTED_BUDGETS

IMAGE_BUDGETS: tuple[int, ...] = SUPPORTED_BUDGETS  # soft tokens per image the processor allows
DEFAULT_IMAGE_BUDGET = 280
ContextPolicy = Literal["error", "drop_oldest"]
CONTEXT_POLICIES: tuple[str, ...] = ("error", "drop_oldest")
DEFAULT_MAX_TOKENS = 4096
MAX_STOP_STRINGS = 16


class OptionError(ValueError):
    """An option got a value it cannot take; `name` is the option, the message its rule."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Limit:
    """The range one numeric option may take (`low_open`: the low end itself is excluded)."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False

    def describe(self) -> str:
        low = f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        return f"{'an integer' if self.integer else 'a number'} {low} and at most {self.high:g}"

    def check(self, name: str, value: Any) -> Any:
        """The value (ints made exact) or `OptionError` naming the option and this rule."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(name, f"{name} must be {self.describe()}; got {value!r}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(name, f"{name} must be {self.describe()}; got {value!r}.")
        if self.integer:
            if isinstance(value, float) and not value.is_integer():
                raise OptionError(name, f"{name} must be {self.describe()}; got {value!r}.")
            value = int(value)
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            raise OptionError(name, f"{name} must be {self.describe()}; got {value!r}.")
        return value


LIMITS: dict[str, Limit] = {
    "max_tokens": Limit(1, 1_048_576, integer=True),
    "temperature": Limit(0.0, 2.0),
    "top_p": Limit(0.0, 1.0, low_open=True),
    "top_k": Limit(0, 1_000_000, integer=True),  # 0 turns top-k off
    "min_p": Limit(0.0, 1.0),
    "repetition_penalty": Limit(0.0, 2.0, low_open=True),
    "seed": Limit(0, 2**64 - 1, integer=True),
}
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed")


@dataclass(frozen=True)
class GenerationOptions:
    """How one answer is generated; see the module docstring."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None  # 0 = greedy
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    enable_thinking: bool = False
    image_budget: int | None = None  # None: the processor's default
    context_policy: ContextPolicy = "error"

    def __post_init__(self) -> None:
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if value is not None or name == "max_tokens":
                object.__setattr__(self, name, limit.check(name, value))
        for name in ("temperature", "top_p", "min_p", "repetition_penalty"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if len(stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in stop):
            raise OptionError(
                "stop", f"stop must be up to {MAX_STOP_STRINGS} non-empty strings; got {stop!r}."
            )
        object.__setattr__(self, "stop", stop)
        if not isinstance(self.enable_thinking, bool):
            raise OptionError(
                "enable_thinking",
                f"enable_thinking must be true or false; got {self.enable_thinking!r}.",
            )
        if self.image_budget is not None and self.image_budget not in IMAGE_BUDGETS:
            choices = ", ".join(map(str, IMAGE_BUDGETS))
            raise OptionError(
                "image_budget", f"image_budget must be one of {choices}; got {self.image_budget!r}."
            )
        if self.context_policy not in CONTEXT_POLICIES:
            raise OptionError(
                "context_policy",
                f"context_policy must be one of {', '.join(CONTEXT_POLICIES)}; "
                f"got {self.context_policy!r}.",
            )

    def replace(self, **changes: Any) -> GenerationOptions:
        """A validated copy with the given fields changed (None is a value: "the default")."""
        unknown = set(changes) - FIELD_NAMES
        if unknown:
            name = sorted(unknown)[0]
            raise OptionError(name, f"There is no generation option called {name!r}.")
        return dataclasses.replace(self, **changes)

    def merged(self, changes: Mapping[str, Any]) -> GenerationOptions:
        """A copy with the changes that are not None applied (overrides over defaults)."""
        return self.replace(**{k: v for k, v in changes.items() if v is not None})

    def sampling(self) -> dict[str, Any]:
        """The sampling fields that are set (the rest keep the model's defaults)."""
        return {n: getattr(self, n) for n in SAMPLING_FIELDS if getattr(self, n) is not None}


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(GenerationOptions))
DEFAULTS = GenerationOptions()
