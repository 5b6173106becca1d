"""Transcripts as files: plain text, Markdown, SubRip (SRT) and JSON."""

from __future__ import annotations

import json
from typing import Literal

from mlx_model.processing.errors import format_duration

from .clips import format_clock
from .transcript import Transcript

ExportFormat = Literal["txt", "md", "srt", "json"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("txt", "md", "srt", "json")


def to_text(transcript: Transcript) -> str:
    """`[12:30] words` per segment."""
    return transcript.text() + "\n"


def to_markdown(transcript: Transcript) -> str:
    """A heading with the name and length, then `**12:30** words` paragraphs."""
    length = transcript.duration_s if transcript.duration_s is not None else transcript.covered_s
    lines = [f"# Transcript: {transcript.name}", "", f"*{format_duration(length)}*"]
    if not transcript.complete:
        lines[-1] += f" *(transcribed up to {format_clock(transcript.covered_s)})*"
    lines.append("")
    for segment in transcript.segments:
        if segment.text.strip():
            lines += [f"**{format_clock(segment.start_s)}** {segment.text}", ""]
    return "\n".join(lines)


def srt_time(seconds: float) -> str:
    """`01:02:03,450` (SubRip's hours:minutes:seconds,milliseconds)."""
    ms = int(round(max(0.0, seconds) * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def to_srt(transcript: Transcript) -> str:
    """One numbered cue per non-empty segment, spanning the segment's clip."""
    cues = []
    for number, segment in enumerate((s for s in transcript.segments if s.text.strip()), 1):
        cues.append(
            f"{number}\n{srt_time(segment.start_s)} --> {srt_time(segment.end_s)}\n{segment.text}\n"
        )
    return "\n".join(cues)


def to_json(transcript: Transcript) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"


def export_transcript(transcript: Transcript, fmt: ExportFormat) -> str:
    """The transcript in `fmt` ("txt", "md", "srt" or "json")."""
    writers = {"txt": to_text, "md": to_markdown, "srt": to_srt, "json": to_json}
    if fmt not in writers:
        raise ValueError(f"Unknown transcript format {fmt!r}; use one of {', '.join(writers)}.")
    return writers[fmt](transcript)
