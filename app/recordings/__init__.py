"""Long recordings and videos: clip-by-clip reading, one-prompt content, transcription,
exports, map-reduce answers, and the fit decisions (pure functions of token counts)."""

from .clips import (
    AudioClip,
    clip_spans,
    clips_from_samples,
    format_clock,
    iter_clips,
    probe_recording,
    read_blocks,
)
from .content import recording_content
from .export import EXPORT_FORMATS, export_transcript
from .mapreduce import (
    Cancelled,
    MapReduceProgress,
    Part,
    answer_blocks,
    map_parts,
    map_reduce,
    reduce_answers,
    split_lines,
    transcript_parts,
)
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
    StopTranscription,
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
    "StopTranscription",
    "PromptBudget",
    "Transcript",
    "TranscriptSegment",
    "TranscriptionProgress",
    "answer_blocks",
    "clip_spans",
    "clips_from_samples",
    "clip_tokens",
    "decide_recording",
    "decide_transcript",
    "export_transcript",
    "format_clock",
    "iter_clips",
    "map_parts",
    "map_reduce",
    "probe_recording",
    "read_blocks",
    "recording_content",
    "recording_tokens",
    "reduce_answers",
    "split_lines",
    "transcribe_clips",
    "transcript_parts",
    "transcription_messages",
]
