"""Generation options: one typed object with the single set of limits and defaults.

`GenerationOptions` is what every front end builds (the HTTP server from a request body,
the CLI from its flags, the GUI from the settings) and what both engines take unchanged.
It validates itself when it is made, so an invalid object never travels: the edges catch
`OptionError`, which names the option and its rule, and answer in their own terms (a 400,
a command-line error, a settings message).

Sampling fields left at None mean "the model's own default" (the checkpoint's
`generation_config.json` for the local engine, the server's default for a remote one).

What the answer must be is part of the options too: `response_format` (a `ResponseFormat`:
any JSON object or a document of a JSON Schema) and `tool_choice` ("auto", "none",
"required" or `FunctionChoice(name)`) with `parallel_tool_calls`. The local engine turns
them into a grammar that constrains decoding (`mlx_model.constrained`); the remote engine
sends them as OpenAI's fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlx_model.events import CONTEXT_POLICIES, DEFAULT_MAX_TOKENS, ContextPolicy
from mlx_model.processing.image import SUPPORTED_BUDGETS

IMAGE_BUDGETS: tuple[int, ...] = SUPPORTED_BUDGETS  # soft tokens per image the processor allows
DEFAULT_IMAGE_BUDGET = 280
TOOL_CHOICES: tuple[str, ...] = ("auto", "none", "required")
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
class ResponseFormat:
    """The answer is a JSON object (`json_object`) or a document of `schema` (`json_schema`).

    `strict`: JSON Schema keywords the grammar cannot enforce are an error (False: ignored).
    `name` and `description` are the schema's, as OpenAI's `json_schema` carries them.
    """

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str = ""
    strict: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in ("json_object", "json_schema"):
            raise OptionError(
                "response_format",
                f"response_format must be json_object or json_schema; got {self.type!r}.",
            )
        if self.type == "json_schema" and not isinstance(self.schema, Mapping):
            raise OptionError(
                "response_format", "response_format json_schema needs a schema (a JSON object)."
            )
        if self.schema is not None and not isinstance(self.schema, Mapping):
            raise OptionError("response_format", "response_format's schema must be an object.")

    @classmethod
    def json_object(cls) -> ResponseFormat:
        return cls("json_object")

    @classmethod
    def json_schema(
        cls, schema: Mapping[str, Any], *, name: str = "", strict: bool = True
    ) -> ResponseFormat:
        return cls("json_schema", schema, name=name, strict=strict)

    def openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions `response_format` object."""
        if self.type == "json_object":
            return {"type": "json_object"}
        spec: dict[str, Any] = {
            "name": self.name or "response",
            "schema": dict(self.schema or {}),
            "strict": self.strict,
        }
        if self.description:
            spec["description"] = self.description
        return {"type": "json_schema", "json_schema": spec}


@dataclass(frozen=True)
class FunctionChoice:
    """`tool_choice` naming one function: the answer is a call of it."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise OptionError("tool_choice", "tool_choice must name a function.")


ToolChoice = str | FunctionChoice  # one of TOOL_CHOICES, or a named function


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
    response_format: ResponseFormat | None = None  # None: free text
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True  # a forced call may be several calls in one turn

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

        if self.response_format is not None and not isinstance(
            self.response_format, ResponseFormat
        ):
            raise OptionError("response_format", "response_format must be a ResponseFormat.")
        if (
            not isinstance(self.tool_choice, FunctionChoice)
            and self.tool_choice not in TOOL_CHOICES
        ):
            raise OptionError(
                "tool_choice",
                f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a function; "
                f"got {self.tool_choice!r}.",
            )
        if not isinstance(self.parallel_tool_calls, bool):
            raise OptionError(
                "parallel_tool_calls",
                f"parallel_tool_calls must be true or false; got {self.parallel_tool_calls!r}.",
            )

    @property
    def forces_tool_call(self) -> bool:
        """The answer must be a tool call ("required" or a named function)."""
        return self.tool_choice == "required" or isinstance(self.tool_choice, FunctionChoice)

    @property
    def constrained(self) -> bool:
        """The answer's form is constrained (JSON or a forced tool call)."""
        return self.response_format is not None or self.forces_tool_call

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
