"""Transcribing a long recording clip by clip, with progress, cancel and a timestamped result.

`transcribe_clips(clips, transcribe, ...)` calls `transcribe(clip) -> text` for each clip
(the app makes each a short generation with `TRANSCRIBE_INSTRUCTION`), reports every
segment as it is done and the progress ("clip 37 of 120, 14 min left"), and stops between
clips when cancelled, keeping what was transcribed (`Transcript.complete` is then False).
A `transcribe` that raises `StopTranscription` (its generation was cancelled mid-clip) stops
it the same way, without that clip. A cancelled transcript can be resumed (`resume=`): its
clips are skipped and the new segments follow its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mlx_model.processing.errors import format_duration

from .clips import AudioClip, format_clock

TRANSCRIBE_INSTRUCTION = (
    "Transcribe this audio exactly as spoken, in the language spoken. Write only the words, "
    "without timestamps or comments. If nothing is said, write nothing."
)


@dataclass(frozen=True)
class TranscriptSegment:
    """What was said in one clip."""

    index: int
    start_s: float
    end_s: float
    text: str


@dataclass
class Transcript:
    """A timestamped transcript of a recording (possibly cut short by a cancel)."""

    name: str
    segments: list[TranscriptSegment] = field(default_factory=list)
    duration_s: float | None = None  # of the whole recording, when known
    complete: bool = False

    @property
    def covered_s(self) -> float:
        """Seconds of the recording transcribed so far."""
        return self.segments[-1].end_s if self.segments else 0.0

    def text(self) -> str:
        """`[12:30] words` lines: what the model reads when answering over the transcript."""
        return "\n".join(
            f"[{format_clock(s.start_s)}] {s.text}" for s in self.segments if s.text.strip()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duration_s": self.duration_s,
            "complete": self.complete,
            "segments": [
                {"start_s": s.start_s, "end_s": s.end_s, "text": s.text} for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [
            TranscriptSegment(i, float(s["start_s"]), float(s["end_s"]), str(s["text"]))
            for i, s in enumerate(data.get("segments", []))
        ]
        return cls(
            name=str(data.get("name", "")),
            segments=segments,
            duration_s=data.get("duration_s"),
            complete=bool(data.get("complete", False)),
        )


@dataclass(frozen=True)
class TranscriptionProgress:
    """After each clip: how far along, and an estimate of the time left."""

    done: int  # clips transcribed
    total: int | None  # clips in all, when the duration is known
    elapsed_s: float
    remaining_s: float | None  # None until a clip has been timed or when the total is unknown

    @property
    def message(self) -> str:
        """`clip 37 of 120, 14 min left` (as the GUI and CLI show it)."""
        text = f"clip {self.done} of {self.total}" if self.total else f"clip {self.done}"
        if self.remaining_s is not None and self.total and self.done < self.total:
            text += f", {format_duration(self.remaining_s)} left"
        return text


Cancel = threading.Event | Callable[[], bool]


class StopTranscription(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a `transcribe` callback whose clip was cut short by a cancel."""


def _cancelled(cancel: Cancel | None) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def transcribe_clips(
    clips: Iterable[AudioClip],
    transcribe: Callable[[AudioClip], str],
    *,
    name: str,
    total: int | None = None,
    duration_s: float | None = None,
    on_segment: Callable[[TranscriptSegment], None] | None = None,
    on_progress: Callable[[TranscriptionProgress], None] | None = None,
    cancel: Cancel | None = None,
    clock: Callable[[], float] = time.monotonic,
    resume: Transcript | None = None,
) -> Transcript:
    """Transcribe `clips` one at a time; see the module docstring.

    `total` (e.g. `len(clip_spans(duration, clip_seconds))`) lets progress say "of N" and
    estimate the time left from the average time per clip so far. `cancel` (an Event or a
    callable) is checked before each clip; a cancelled transcript keeps its segments.
    `resume`: an earlier transcript of the same recording to continue (its clips, by index,
    are skipped; progress counts them as done).
    """
    transcript = Transcript(name=name, duration_s=duration_s)
    if resume is not None:
        transcript.segments = list(resume.segments)
    skip = len(transcript.segments)
    started = clock()
    stopped = False
    for clip in clips:
        if getattr(clip, "index", skip) < skip:
            continue
        if _cancelled(cancel):
            stopped = True
            break
        try:
            text = " ".join(transcribe(clip).split())  # one line per segment
        except StopTranscription:
            stopped = True
            break
        segment = TranscriptSegment(len(transcript.segments), clip.start_s, clip.end_s, text)
        transcript.segments.append(segment)
        if on_segment is not None:
            on_segment(segment)
        if on_progress is not None:
            done = len(transcript.segments)
            elapsed = clock() - started
            remaining = elapsed / (done - skip) * (total - done) if total else None
            on_progress(TranscriptionProgress(done, total, elapsed, remaining))
    finished = total is not None and len(transcript.segments) >= total
    transcript.complete = finished or not (stopped or _cancelled(cancel))
    return transcript


def transcription_messages(clip: AudioClip) -> list[dict[str, Any]]:
    """The one-turn conversation that asks the model to transcribe `clip`."""
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": TRANSCRIBE_INSTRUCTION}, clip.block()],
        }
    ]
