"""What preparing long inputs tells the conversation: notes, transcript segments, progress.

These events travel in a generation's stream before the model's own (the engine service
emits them as `EngineOutput`s like any other): the conversation controller stores a
transcript as its own message while it is made and puts the notes on the answer; the GUI
shows the progress with a cancel button; the CLI prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.recordings import TranscriptSegment, format_clock

TranscriptKind = Literal["transcript", "description"]


@dataclass(frozen=True)
class InputNote:
    """A sentence for the answer: which pages were used, how a video was sampled, ..."""

    text: str


@dataclass(frozen=True)
class InputProgress:
    """How far a transcription (or description, or part-by-part reading) is."""

    name: str  # the recording, video or document it is about
    stage: Literal["transcribe", "describe", "map", "reduce"]
    done: int
    total: int | None
    message: str  # "clip 37 of 120, 14 min left"

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None


@dataclass(frozen=True)
class TranscriptStarted:
    """A transcript (of a recording) or a description (of a video) starts streaming."""

    name: str
    sha256: str  # the media file it is of ("" for media that is not stored)
    kind: TranscriptKind
    total: int | None  # clips or segments in all
    resumed: int = 0  # segments taken over from an earlier, cancelled transcript


@dataclass(frozen=True)
class TranscriptLine:
    """One clip transcribed (or one segment described)."""

    segment: TranscriptSegment

    @property
    def text(self) -> str:
        """`[12:30] words` as the transcript message shows it (a paragraph of its own)."""
        return f"[{format_clock(self.segment.start_s)}] {self.segment.text}\n\n"


@dataclass(frozen=True)
class TranscriptFinished:
    """The transcript is complete, or cut short by a cancel (`transcript["complete"]`)."""

    sha256: str
    kind: TranscriptKind
    transcript: dict[str, Any]  # `Transcript.to_dict()`


InputEvent = InputNote | InputProgress | TranscriptStarted | TranscriptLine | TranscriptFinished
INPUT_EVENTS = (InputNote, InputProgress, TranscriptStarted, TranscriptLine, TranscriptFinished)
