"""Keep-alive: how long a loaded model stays in memory with nothing to do.

As with Ollama's `keep_alive` and LM Studio's idle TTL, the local model is unloaded after
this much idle time (no generation, no load) and loaded again, with a notice, by the next
message. A duration is written `30m`, `2h`, `90s`, `1h30m`, a bare number of seconds
(`600`), or `never` (also `-1` or any negative number, as Ollama takes it); `0` unloads
the model as soon as an answer is done.
"""

from __future__ import annotations

import math
import re

DEFAULT_KEEP_ALIVE = "30m"
NEVER = "never"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class KeepAliveError(ValueError):
    """A keep-alive that is not a duration; the message says what is accepted."""


def parse_keep_alive(text: str | float | int) -> float | None:
    """Seconds of idle time before the model unloads, or None for never."""
    if isinstance(text, bool):
        raise KeepAliveError(_explain(text))
    if isinstance(text, int | float):
        value = float(text)
    else:
        written = str(text).strip().lower()
        if written in (NEVER, "forever", "none"):
            return None
        try:
            value = float(written)
        except ValueError:
            value = _duration(written)
    if math.isnan(value) or math.isinf(value):
        raise KeepAliveError(_explain(text))
    return None if value < 0 else value


def _duration(written: str) -> float:
    position, total = 0, 0.0
    for match in _PART.finditer(written):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(written):
        raise KeepAliveError(_explain(written))
    return total


def _explain(text: object) -> str:
    return (
        f"keep-alive must be a duration such as 30m, 2h, 90s or 600 (seconds), or never; "
        f"got {text!r}"
    )


def format_keep_alive(seconds: float | None) -> str:
    """`parse_keep_alive`'s inverse, for people: "30 min", "2 h", "never"."""
    if seconds is None:
        return NEVER
    if seconds < 60 or seconds % 60:
        return f"{seconds:g} s"
    minutes = seconds / 60
    if minutes < 60 or minutes % 60:
        return f"{minutes:g} min"
    return f"{minutes / 60:g} h"
