"""The model library's typed errors and the kind each is reported as.

A failed generation ends with `GenerationError(kind, message)`; `error_kind(exc)` gives the
kind of an exception from its type alone (never from its name or message). Light to
import: no MLX here, so callers may classify errors without loading the model stack.
"""

from __future__ import annotations

from typing import Any

from .config import ConfigError
from .processing.errors import (
    ChatFormatError,
    MediaError,
    MediaTooLargeError,
    MediaTooLongError,
)


class GenerationFailure(Exception):
    """A generation that cannot run; the class says which kind of failure it is."""

    kind = "internal"


class InvalidRequestError(GenerationFailure, ValueError):
    """The request itself is wrong (an option out of range, tools of the wrong shape)."""

    kind = "invalid_request"


class ContextOverflowError(GenerationFailure):
    """The conversation does not fit the context and the policy says not to drop turns."""

    kind = "context_overflow"


class EngineBusyError(GenerationFailure):
    """The engine is already generating."""

    kind = "busy"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file or field."""


class MemoryPlanError(RuntimeError):
    """The requested model/context does not fit the device; the message proposes what does."""

    def __init__(self, message: str, plan: Any, alternatives: list[Any]):
        super().__init__(message)
        self.plan = plan
        self.alternatives = alternatives


class MemoryLimitError(MemoryError):
    """An allocation or a context length would go past the applied memory plan."""


def error_kind(exc: BaseException) -> str:
    """The `GenerationError.kind` an exception is reported as."""
    if isinstance(exc, GenerationFailure):
        return exc.kind
    if isinstance(exc, MediaTooLargeError):
        return "media_too_large"
    if isinstance(exc, MediaTooLongError):
        return "media_too_long"
    if isinstance(exc, MediaError):
        return "media"
    if isinstance(exc, ChatFormatError):
        return "invalid_request"
    if isinstance(exc, MemoryError | MemoryPlanError):
        return "memory"
    if isinstance(exc, ConfigError | CheckpointError):
        return "load"
    return "internal"
