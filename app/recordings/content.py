"""A long recording as one message's content: each clip its own audio block after its start time.

The processor renders content blocks in the order given (`order_content` is not applied to
an explicit list), so the model reads `00:00 <audio> 00:30 <audio> ...`, the way video
frames carry their timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlx_model.processing.errors import format_duration

from .clips import AudioClip, format_clock


def recording_content(
    clips: Iterable[AudioClip], *, name: str | None = None, duration_s: float | None = None
) -> list[dict[str, Any]]:
    """Content blocks: an optional title line, then per clip its start time (text) and its audio."""
    blocks: list[dict[str, Any]] = []
    if name:
        length = f", {format_duration(duration_s)}" if duration_s is not None else ""
        blocks.append(
            {
                "type": "text",
                "text": f"Recording “{name}”{length}, in parts, each after its start time:",
            }
        )
    for clip in clips:
        blocks.append({"type": "text", "text": format_clock(clip.start_s)})
        blocks.append(clip.block())
    return blocks
