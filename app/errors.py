"""The one error taxonomy: every failure has a kind, mapped once to an HTTP status and once to
a hint for people.

Engines report failures as `GenerationError(kind, message)` events; jobs that raise are
classified by `kind_of(exception)`, which looks at the exception's type only (never at its
message): the model library's typed errors carry their kind, `AppError` carries its own,
and a few built-in types have a fixed one. The HTTP server answers a kind with
`http_status(kind)`; the GUI shows `user_hint(kind)` under the message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlx_model.errors import error_kind as model_error_kind


class ErrorKind(enum.StrEnum):
    INVALID_REQUEST = "invalid_request"  # an option or message the engine cannot take
    UNSUPPORTED = "unsupported"  # valid, but this engine cannot apply it (remote backend)
    CONTEXT_OVERFLOW = "context_overflow"
    MEDIA = "media"  # an attachment that is corrupt or unsupported
    MEDIA_TOO_LARGE = "media_too_large"  # over a size limit (bytes, pixels, per-request budget)
    MEDIA_TOO_LONG = "media_too_long"  # audio or video over a duration limit
    TOOL = "tool"
    NO_MODEL = "no_model"
    LOADING = "loading"  # the model is still loading
    LOAD = "load"  # the model could not be loaded
    NOT_FOUND = "not_found"
    MEMORY = "memory"
    BUSY = "busy"
    CANCELLED = "cancelled"
    AUTH = "auth"  # a remote server refused the key
    CONNECTION = "connection"  # a remote server cannot be reached
    TIMEOUT = "timeout"  # a remote server did not answer in time
    REMOTE = "remote"  # a remote server failed
    INTERNAL = "internal"


@dataclass(frozen=True)
class KindInfo:
    http_status: int
    hint: str = ""  # what the user can do, shown under the error in the GUI


KINDS: dict[ErrorKind, KindInfo] = {
    ErrorKind.INVALID_REQUEST: KindInfo(400, "Check the settings named above and try again."),
    ErrorKind.UNSUPPORTED: KindInfo(
        400, "The remote server cannot apply this setting: reset it or use the local model."
    ),
    ErrorKind.CONTEXT_OVERFLOW: KindInfo(
        400, "Start a new conversation, or remove large attachments, and try again."
    ),
    ErrorKind.MEDIA: KindInfo(
        400, "Remove the attachment named above, or replace it with a smaller or shorter file."
    ),
    ErrorKind.MEDIA_TOO_LARGE: KindInfo(
        413, "Remove the attachment named above, or replace it with a smaller file."
    ),
    ErrorKind.MEDIA_TOO_LONG: KindInfo(
        400, "Remove the recording named above, or attach a shorter clip of it."
    ),
    ErrorKind.TOOL: KindInfo(400),
    ErrorKind.NO_MODEL: KindInfo(
        503, "Choose or download a model first (Model menu → Choose Model…)."
    ),
    ErrorKind.LOADING: KindInfo(503, "Wait until the model has loaded, then try again."),
    ErrorKind.LOAD: KindInfo(500, "Choose another model folder in Model & Memory."),
    ErrorKind.NOT_FOUND: KindInfo(404),
    ErrorKind.MEMORY: KindInfo(
        503, "Close other apps, or choose 4-bit weights or a shorter context in Model & Memory."
    ),
    ErrorKind.BUSY: KindInfo(429, "Wait for the running answer to finish, or stop it."),
    ErrorKind.CANCELLED: KindInfo(499),
    ErrorKind.AUTH: KindInfo(502, "Check the remote server's API key in Settings ▸ Backend."),
    ErrorKind.CONNECTION: KindInfo(
        502, "Check that the remote server is running and its URL in Settings ▸ Backend."
    ),
    ErrorKind.TIMEOUT: KindInfo(504, "The remote server is slow or stuck; try again later."),
    ErrorKind.REMOTE: KindInfo(502, "The remote server failed; see its logs."),
    ErrorKind.INTERNAL: KindInfo(500, "Try Regenerate. If it happens again, restart Gemma Desk."),
}


MEDIA_KINDS = frozenset({ErrorKind.MEDIA, ErrorKind.MEDIA_TOO_LARGE, ErrorKind.MEDIA_TOO_LONG})


class AppError(Exception):
    """A failure of the application layer with its kind (remote backend, jobs, requests)."""

    def __init__(self, kind: ErrorKind | str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.kind = as_kind(kind)
        self.param = param  # the request field at fault, when there is one


def as_kind(kind: str | None) -> ErrorKind:
    """A kind string as an `ErrorKind` (unknown ones are `INTERNAL`)."""
    try:
        return ErrorKind(kind or "internal")
    except ValueError:
        return ErrorKind.INTERNAL


def kind_of(exc: BaseException) -> ErrorKind:
    """The kind of an exception, by its type."""
    from app.options import OptionError

    if isinstance(exc, AppError):
        return exc.kind
    if isinstance(exc, OptionError):
        return ErrorKind.INVALID_REQUEST
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return ErrorKind.NOT_FOUND
    return as_kind(model_error_kind(exc))


def http_status(kind: str) -> int:
    """The HTTP status code a failure of this kind is answered with."""
    return KINDS[as_kind(kind)].http_status


def user_hint(kind: str | None) -> str:
    """What the user can do about a failure of this kind ("" when there is nothing to say)."""
    if not kind:
        return ""
    return KINDS[as_kind(kind)].hint
