"""Long recordings and videos: clip-by-clip reading, one-prompt content, transcription,
exports, map-reduce answers, and the fit decisions (pure functions of token counts)."""

from .clips import AudioClip, clip_spans, format_clock, iter_clips, probe_recording
from .content import recording_content
from .export import EXPORT_FORMATS, export_transcript
from .mapreduce import Cancelled, MapReduceProgress, Part, map_reduce, split_lines, transcript_parts
from .plan import (
    Decision,
    PromptBudget,
    clip_tokens,
    decide_recording,
    decide_transcript,
    recording_tokens,
)
from .transcript import (
    TRANSCRIBE_INSTRUCTION,
    Transcript,
    TranscriptionProgress,
    TranscriptSegment,
    transcribe_clips,
    transcription_messages,
)

__all__ = [
    "EXPORT_FORMATS",
    "TRANSCRIBE_INSTRUCTION",
    "AudioClip",
    "Cancelled",
    "Decision",
    "MapReduceProgress",
    "Part",
    "PromptBudget",
    "Transcript",
    "TranscriptSegment",
    "TranscriptionProgress",
    "clip_spans",
    "clip_tokens",
    "decide_recording",
    "decide_transcript",
    "export_transcript",
    "format_clock",
    "iter_clips",
    "map_reduce",
    "probe_recording",
    "recording_content",
    "recording_tokens",
    "split_lines",
    "transcribe_clips",
    "transcript_parts",
    "transcription_messages",
]
