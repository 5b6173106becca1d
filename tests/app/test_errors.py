"""The error taxonomy: kinds from exception types, one HTTP status and one hint per kind."""

from __future__ import annotations

import pytest

from app.errors import KINDS, AppError, ErrorKind, http_status, kind_of, user_hint
from app.options import OptionError
from mlx_model.config import ConfigError
from mlx_model.errors import (
    ContextOverflowError,
    InvalidRequestError,
    MemoryLimitError,
    MemoryPlanError,
)
from mlx_model.processing.errors import (
    CorruptMediaError,
    MediaTooLargeError,
    MediaTooLongError,
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (MediaTooLargeError("photo.png is too large"), ErrorKind.MEDIA_TOO_LARGE),
        (MediaTooLongError("clip.wav is too long"), ErrorKind.MEDIA_TOO_LONG),
        (CorruptMediaError("photo.png does not decode"), ErrorKind.MEDIA),
        (ContextOverflowError("too long"), ErrorKind.CONTEXT_OVERFLOW),
        (InvalidRequestError("bad"), ErrorKind.INVALID_REQUEST),
        (MemoryLimitError("no room"), ErrorKind.MEMORY),
        (MemoryPlanError("does not fit", None, []), ErrorKind.MEMORY),
        (ConfigError("config.json: bad"), ErrorKind.LOAD),
        (OptionError("top_p", "top_p must be ..."), ErrorKind.INVALID_REQUEST),
        (FileNotFoundError("missing"), ErrorKind.NOT_FOUND),
        (AppError("auth", "refused"), ErrorKind.AUTH),
        (RuntimeError("memory context media"), ErrorKind.INTERNAL),
    ],
)
def test_the_kind_comes_from_the_type_not_the_message(exc, kind):
    assert kind_of(exc) == kind


def test_every_kind_has_an_http_status():
    assert set(KINDS) == set(ErrorKind)
    assert http_status("media") == 400 and http_status("memory") == 503
    assert http_status("no_model") == 503 and http_status("busy") == 429
    assert http_status("something new") == 500


def test_hints_are_for_people_and_empty_when_there_is_nothing_to_do():
    assert "new conversation" in user_hint("context_overflow")
    assert user_hint(None) == "" and user_hint("cancelled") == ""
