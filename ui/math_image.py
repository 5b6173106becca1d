"""LaTeX formulas typeset as images with matplotlib's mathtext (no TeX installation needed).

`typeset(formula, color, display)` returns a PNG (rendered at twice the size shown, so it
is sharp on Retina screens) with the size to show it at, or None when mathtext cannot
parse the formula: the caller then falls back to the Unicode text of `ui.math_text`.
Results are cached: a streamed answer re-renders its paragraphs many times.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from functools import lru_cache

log = logging.getLogger(__name__)

SCALE = 2  # pixels per point shown (Retina)
INLINE_PT = 13
DISPLAY_PT = 16
# matplotlib is not thread-safe, and the warm-up runs off the UI thread: one render at a time.
_matplotlib_lock = threading.RLock()


class _NotTypesetNow(Exception):
    """A failure that is not the formula's fault (never cached: the next call tries again)."""


def _mathtext():
    with _matplotlib_lock:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib import mathtext
        from matplotlib.font_manager import FontProperties

        return mathtext, FontProperties


def warm_up_in_background() -> None:
    """Import matplotlib off the UI thread, so the first formula does not stall it."""
    threading.Thread(target=lambda: typeset("x^2", "#000000", False), daemon=True).start()


def typeset(formula: str, color: str, display: bool) -> tuple[str, int, int] | None:
    """(base64 PNG, width, height in points shown) of `formula`, or None if it does not parse."""
    try:
        return _typeset_cached(formula, color, display)
    except _NotTypesetNow:
        return None


@lru_cache(maxsize=512)
def _typeset_cached(formula: str, color: str, display: bool) -> tuple[str, int, int] | None:
    try:
        mathtext, font_properties = _mathtext()
    except ImportError:
        return None
    source = f"${formula.strip()}$"
    size = DISPLAY_PT if display else INLINE_PT
    out = io.BytesIO()
    import matplotlib

    with _matplotlib_lock:
        try:
            with matplotlib.rc_context({"savefig.transparent": True}):  # light and dark alike
                mathtext.math_to_image(source, out, prop=font_properties(size=size),
                                       dpi=72 * SCALE, format="png", color=color)  # fmt: skip
        except ValueError:  # mathtext cannot parse or lay out this formula: final, cached
            return None
        except Exception as exc:  # noqa: BLE001 - anything else may pass: show text this time
            log.warning("Could not typeset %r: %s", formula, exc)
            raise _NotTypesetNow from exc
    data = out.getvalue()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return base64.b64encode(data).decode("ascii"), max(1, width // SCALE), max(1, height // SCALE)
