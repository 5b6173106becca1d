"""LaTeX formulas typeset as images with matplotlib's mathtext (no TeX installation needed).

`typeset(formula, color, display)` returns a PNG (rendered at twice the size shown, so it
is sharp on Retina screens) with the size to show it at, or None when mathtext cannot
parse the formula: the caller then falls back to the Unicode text of `ui.math_text`.
Results are cached: a streamed answer re-renders its paragraphs many times.
"""

from __future__ import annotations

import base64
import io
import threading
from functools import lru_cache

SCALE = 2  # pixels per point shown (Retina)
INLINE_PT = 13
DISPLAY_PT = 16
_import_lock = threading.Lock()


def _mathtext():
    with _import_lock:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib import mathtext
        from matplotlib.font_manager import FontProperties

        return mathtext, FontProperties


def warm_up_in_background() -> None:
    """Import matplotlib off the UI thread, so the first formula does not stall it."""
    threading.Thread(target=lambda: typeset("x^2", "#000000", False), daemon=True).start()


@lru_cache(maxsize=512)
def typeset(formula: str, color: str, display: bool) -> tuple[str, int, int] | None:
    """(base64 PNG, width, height in points shown) of `formula`, or None if it does not parse."""
    try:
        mathtext, font_properties = _mathtext()
    except ImportError:
        return None
    source = f"${formula.strip()}$"
    size = DISPLAY_PT if display else INLINE_PT
    out = io.BytesIO()
    import matplotlib

    try:
        with matplotlib.rc_context({"savefig.transparent": True}):  # light and dark alike
            mathtext.math_to_image(source, out, prop=font_properties(size=size),
                                   dpi=72 * SCALE, format="png", color=color)  # fmt: skip
    except Exception:  # noqa: BLE001 - mathtext's ValueError, or anything it cannot lay out
        return None
    data = out.getvalue()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return base64.b64encode(data).decode("ascii"), max(1, width // SCALE), max(1, height // SCALE)
