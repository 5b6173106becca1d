"""Long inputs into the prompt: documents, and recordings or videos longer than one clip.

`prepare_messages(messages, facts, generate=..., emit=...)` runs before the model answers
(on the engine's thread). It finds the parts of the user messages the processor cannot take
as they are — `{"type": "document"}` parts, audio longer than the checkpoint's clip, video
longer than one clip (60 s) — and puts each in the form that fits what the context leaves:

- documents: fit or retrieve (`app.documents.fit_or_retrieve`, the message's text is the
  question); the note says which pages were used;
- a recording: all of it as consecutive clips, each after its start time, when that fits;
  else transcribed clip by clip (`transcribe_clips`, each clip one short greedy generation),
  the transcript streamed out as `TranscriptLine`s with progress, then read whole, or part
  by part when even the transcript does not fit (the request is done for each part, and
  the model combines the partial answers in its answer);
- a video: its one-minute segments (each sampled as one clip by the checkpoint's rule), at
  the richest fidelity that fits (`choose_fidelity`), with its sound as timestamped clips;
  else described segment by segment like a transcript.

The budget is the plan's context less everything else in the conversation and room for the
answer; long items are decided newest message first, each with what the newer ones left.
A transcript made before (complete, or cut short by a cancel: then it is continued) is
taken from `transcripts` (media hash -> `Transcript.to_dict()`), never made twice.
Cancel (`cancelled()`, checked between clips; a running clip is stopped by the engine's
cancel) ends preparation with what was transcribed reported, and `Prepared.cancelled` set.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from app.documents import Document, DocumentOptions, fit_or_retrieve
from app.errors import AppError, ErrorKind
from app.inputs.documents import DOCUMENTS
from app.inputs.events import (
    InputEvent,
    InputNote,
    InputProgress,
    TranscriptFinished,
    TranscriptLine,
    TranscriptStarted,
)
from app.inputs.facts import ModelFacts
from app.recordings import (
    AudioClip,
    Transcript,
    TranscriptionProgress,
    answer_blocks,
    clip_spans,
    clips_from_samples,
    iter_clips,
    map_parts,
    probe_recording,
    recording_content,
    recording_tokens,
    reduce_answers,
    transcribe_clips,
    transcript_parts,
    transcription_messages,
)
from app.recordings.plan import clip_tokens
from app.recordings.video import (
    choose_fidelity,
    describe_request,
    frame_tokens,
    iter_segments,
    long_video_content,
    plan_segments,
    probe_video,
)
from mlx_model.processing.errors import format_duration
from mlx_model.processing.image import SUPPORTED_BUDGETS
from mlx_model.processing.video import MAX_VIDEO_SECONDS

# Generation lengths of the helper requests (the answer's own `max_tokens` caps them too).
TRANSCRIBE_MAX_TOKENS = 256  # 30 s of speech is about 80 words
DESCRIBE_MAX_TOKENS = 512
MAP_MAX_TOKENS = 768
MESSAGE_OVERHEAD = 8  # turn markers and role of one message
DEFAULT_TASK = "Summarize what it says, with the times of the main points."

Generate = Callable[[list[dict[str, Any]], int], str]  # (messages, max_tokens) -> text
Emit = Callable[[InputEvent], None]


@dataclass
class Prepared:
    """What `prepare_messages` made: the messages the model reads, and the notes for the answer."""

    messages: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class _Item:
    """A long input of one user message (documents: all the message's document parts)."""

    message: int
    parts: list[int]
    kind: str  # "documents" | "audio" | "video"
    duration_s: float | None = None


class _Stopped(Exception):  # noqa: N818 - control flow: the user cancelled
    pass


def is_long_part(part: Any, facts: ModelFacts) -> bool:
    """Does the processor need this part prepared (a document, audio or video over one clip)?"""
    return _long_kind(part, facts)[0] is not None


def needs_preparation(messages: Sequence[dict[str, Any]], facts: ModelFacts | None = None) -> bool:
    """A cheap check (headers only) whether any user message holds a long input."""
    facts = facts or ModelFacts.estimated()
    return any(
        _long_kind(part, facts)[0] is not None
        for message in messages
        if message.get("role") == "user" and isinstance(message.get("content"), list)
        for part in message["content"]
    )


def prepare_messages(
    messages: Sequence[dict[str, Any]],
    facts: ModelFacts,
    *,
    generate: Generate,
    emit: Emit = lambda event: None,
    max_tokens: int = 4096,
    image_budget: int | None = None,
    tools: Sequence[dict[str, Any]] | None = None,
    transcripts: Mapping[str, dict[str, Any]] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    render_only: bool = False,
) -> Prepared:
    """See the module docstring. `render_only` (for `--print-prompt`) makes no generation:
    where a transcript would be made, a line says so."""
    return _Preparer(
        facts, generate, emit, max_tokens, image_budget, tools, dict(transcripts or {}),
        cancelled, render_only,
    ).run([_copy(m) for m in messages])  # fmt: skip


def _copy(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        content = [dict(p) if isinstance(p, dict) else p for p in content]
        return {**message, "content": content}
    return dict(message)


# -- finding long parts ----------------------------------------------------------------------


def _duration(part: dict[str, Any], kind: str) -> float | None:
    if part.get("duration_s") is not None:
        return float(part["duration_s"])
    source = part.get(kind, part.get("path", part.get("url")))
    if isinstance(source, tuple) and len(source) == 2:
        samples, rate = source
        return len(samples) / float(rate)
    if isinstance(source, str | Path) and Path(source).is_file():
        try:
            if kind == "audio":
                return probe_recording(source, name=part.get("name"))
            return probe_video(source, part.get("name")).duration_s
        except Exception:  # noqa: BLE001 - the processor's own check names the problem
            return None
    return None


def _long_kind(part: Any, facts: ModelFacts) -> tuple[str | None, float | None]:
    """("documents" | "audio" | "video", the media's duration) for a long part, else (None, None)."""
    if not isinstance(part, dict):
        return None, None
    kind = part.get("type")
    if kind == "document":
        return "documents", None
    if kind in ("audio", "video"):
        if kind == "video" and not isinstance(part.get("video", part.get("path")), str | Path):
            return None, None  # already decoded frames (a segment)
        limit = facts.config.max_audio_seconds if kind == "audio" else MAX_VIDEO_SECONDS
        duration = _duration(part, kind)
        if duration is not None and duration > limit + 1e-6:
            return kind, duration
    return None, None


def merge_text(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neighbouring text blocks as one, a blank line apart (the chat template trims each text
    block, so separate blocks would run together)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "text" and out and out[-1].get("type") == "text":
            joined = out[-1]["text"].rstrip() + "\n\n" + str(block.get("text", "")).lstrip()
            out[-1] = {"type": "text", "text": joined}
        else:
            out.append(block)
    return out


def _name(part: dict[str, Any], default: str) -> str:
    if part.get("name"):
        return str(part["name"])
    source = part.get("path", part.get(part.get("type", ""), ""))
    return Path(source).name if isinstance(source, str | Path) and str(source) else default


def _source(part: dict[str, Any], kind: str) -> Any:
    return part.get(kind, part.get("path", part.get("url")))


def _clean(part: dict[str, Any]) -> dict[str, Any]:
    """A short media part as the processor and the remote API take it (no app bookkeeping)."""
    return {k: v for k, v in part.items() if k not in ("name", "sha256", "duration_s", "mime")}


# -- the preparer ------------------------------------------------------------------------------


class _Preparer:
    def __init__(
        self,
        facts: ModelFacts,
        generate: Generate,
        emit: Emit,
        max_tokens: int,
        image_budget: int | None,
        tools: Sequence[dict[str, Any]] | None,
        transcripts: dict[str, dict[str, Any]],
        cancelled: Callable[[], bool],
        render_only: bool,
    ) -> None:
        self.facts = facts
        self.count = facts.count
        self.cfg = facts.config
        self.generate = generate
        self.emit = emit
        self.max_tokens = max_tokens
        self.image_budget = image_budget or self.cfg.image_budget
        self.tools = tools
        self.transcripts = transcripts
        self.cancelled = cancelled
        self.render_only = render_only
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text:
            self.notes.append(text)
            self.emit(InputNote(text))

    # -- plan -----------------------------------------------------------------------------

    def run(self, messages: list[dict[str, Any]]) -> Prepared:
        items = self._items(messages)
        if not items:
            return Prepared(messages)
        reserve = min(self.max_tokens, self.facts.context_limit // 2) + 32
        budget = self.facts.context_limit - self._fixed_tokens(messages, items) - reserve
        replaced: dict[tuple[int, int], list[dict[str, Any]]] = {}
        try:
            for item in sorted(items, key=lambda i: -i.message):
                blocks, used = self._prepare(item, messages, max(0, budget))
                budget -= used
                first, *rest = item.parts
                replaced[(item.message, first)] = blocks
                for index in rest:
                    replaced[(item.message, index)] = []
        except _Stopped:
            return Prepared(messages, self.notes, cancelled=True)
        out = []
        for m, message in enumerate(messages):
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, list):
                new: list[dict[str, Any]] = []
                for p, part in enumerate(content):
                    if (m, p) in replaced:
                        new.extend(replaced[(m, p)])
                    elif isinstance(part, dict) and part.get("type") in ("audio", "video", "image"):
                        new.append(_clean(part))
                    else:
                        new.append(part)
                if any(key[0] == m for key in replaced):
                    new = merge_text(new)
                message = {**message, "content": new}
            out.append(message)
        return Prepared(out, self.notes)

    def _items(self, messages: list[dict[str, Any]]) -> list[_Item]:
        items: list[_Item] = []
        for m, message in enumerate(messages):
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, list):
                continue
            documents = _Item(m, [], "documents")
            for p, part in enumerate(content):
                kind, duration = _long_kind(part, self.facts)
                if kind == "documents":
                    documents.parts.append(p)
                elif kind is not None:
                    part["duration_s"] = duration  # measured once (a copy of the caller's part)
                    items.append(_Item(m, [p], kind, duration))
            if documents.parts:
                items.append(documents)
        return items

    def _fixed_tokens(self, messages: list[dict[str, Any]], items: list[_Item]) -> int:
        """Tokens of everything but the long items: text, short media, tools, markers."""
        long_parts = {(i.message, p) for i in items for p in i.parts}
        texts: list[str] = []
        media = 0
        for m, message in enumerate(messages):
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for p, part in enumerate(content):
                    if (m, p) in long_parts or not isinstance(part, dict):
                        continue
                    if part.get("type") == "text":
                        texts.append(str(part.get("text", "")))
                    else:
                        media += self._short_media_tokens(part)
            elif content is not None:
                texts.append(json.dumps(content, ensure_ascii=False, default=str))
            for key in ("tool_calls", "reasoning_content"):
                if message.get(key):
                    texts.append(json.dumps(message[key], ensure_ascii=False, default=str))
        if self.tools:
            texts.append(json.dumps(list(self.tools), ensure_ascii=False))
        return self.count("\n".join(texts)) + media + MESSAGE_OVERHEAD * (len(messages) + 1)

    def _short_media_tokens(self, part: dict[str, Any]) -> int:
        cfg = self.cfg
        kind = part.get("type")
        if kind == "image":
            return int(part.get("max_soft_tokens") or self.image_budget) + 2
        if kind == "audio":
            duration = _duration(part, "audio") or cfg.max_audio_seconds
            samples = math.ceil(min(duration, cfg.max_audio_seconds) * cfg.sampling_rate)
            return clip_tokens(samples, cfg.samples_per_token) + 2
        if kind == "video":
            duration = _duration(part, "video") or MAX_VIDEO_SECONDS
            frames = len(cfg.video_sampling.indices(max(1, int(duration * 24)), 24.0))
            budget = int(part.get("max_soft_tokens") or cfg.video_budget)
            return frames * (budget + 2 + 3)
        return 0

    def _prepare(
        self, item: _Item, messages: list[dict[str, Any]], available: int
    ) -> tuple[list[dict[str, Any]], int]:
        content = messages[item.message]["content"]
        question = " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        ).strip()
        if item.kind == "documents":
            return self._documents([content[p] for p in item.parts], question, available)
        part = content[item.parts[0]]
        if item.kind == "audio":
            return self._recording(part, question, available)
        return self._video(part, question, available)

    # -- documents --------------------------------------------------------------------------

    def _documents(
        self, parts: list[dict[str, Any]], question: str, available: int
    ) -> tuple[list[dict[str, Any]], int]:
        cfg = self.cfg
        options = DocumentOptions(
            image_budget=self.image_budget,
            patch_size=cfg.patch_size,
            pooling_kernel_size=cfg.pooling_kernel_size,
        )
        documents: list[Document] = [DOCUMENTS.open(part, options) for part in parts]
        selection = fit_or_retrieve(documents, question, available, self.count)
        if selection.mode == "retrieved" and not selection.used:
            names = ", ".join(d.name for d in documents)
            raise AppError(
                ErrorKind.CONTEXT_OVERFLOW,
                f"{names}: the conversation leaves no room for even one passage of the "
                "documents. Start a new conversation to ask about them.",
            )
        self.note(selection.note())
        return selection.blocks, selection.tokens

    # -- recordings -------------------------------------------------------------------------

    def _recording(
        self, part: dict[str, Any], question: str, available: int
    ) -> tuple[list[dict[str, Any]], int]:
        cfg = self.cfg
        name = _name(part, "recording")
        duration = float(part["duration_s"])
        title = (
            f"Recording “{name}”, {format_duration(duration)}, in parts, each after its start time:"
        )
        needed = self.count(title) + recording_tokens(
            duration,
            clip_seconds=cfg.max_audio_seconds,
            sampling_rate=cfg.sampling_rate,
            samples_per_token=cfg.samples_per_token,
            label_tokens=self.count("12:30") + 1,
        )
        clip_count = len(clip_spans(duration, cfg.max_audio_seconds))
        if needed <= available:
            clips = self._clips(part)
            return recording_content(clips, name=name, duration_s=duration), needed
        self.note(
            f"“{name}” ({format_duration(duration)}) takes more of the context than is left "
            f"({needed:,} tokens as audio), so it was transcribed clip by clip ({clip_count} "
            "clips) and the answer is over the transcript."
        )
        transcript = self._transcribe(part, name, duration, clip_count)
        return self._over_text(transcript, name, "recording", question, available)

    def _clips(self, part: dict[str, Any]) -> list[AudioClip] | Any:
        cfg = self.cfg
        source = _source(part, "audio")
        if isinstance(source, tuple):
            return clips_from_samples(
                source[0], int(source[1]), clip_seconds=cfg.max_audio_seconds,
                sampling_rate=cfg.sampling_rate,
            )  # fmt: skip
        return iter_clips(
            source, clip_seconds=cfg.max_audio_seconds, sampling_rate=cfg.sampling_rate,
            name=part.get("name"),
        )  # fmt: skip

    def _transcribe(
        self, part: dict[str, Any], name: str, duration: float, total: int
    ) -> Transcript:
        sha = str(part.get("sha256", ""))
        known = self.transcripts.get(sha) if sha else None
        earlier = Transcript.from_dict(known) if known else None
        if earlier is not None and earlier.complete:
            if not known.get("shown", True):  # its message was superseded: show it again
                self._replay(earlier, sha, "transcript")
            return earlier
        if self.render_only:
            return Transcript(name, duration_s=duration, complete=False)
        limit = min(TRANSCRIBE_MAX_TOKENS, self.max_tokens)
        return self._run_transcript(
            name, sha, "transcript", total, duration, self._clips(part),
            lambda clip: self.generate(transcription_messages(clip), limit), earlier,
        )  # fmt: skip

    def _run_transcript(
        self,
        name: str,
        sha: str,
        kind: str,
        total: int,
        duration: float,
        items: Any,
        transcribe: Callable[[Any], str],
        earlier: Transcript | None,
    ) -> Transcript:
        resumed = len(earlier.segments) if earlier else 0
        self.emit(TranscriptStarted(name, sha, kind, total, resumed))  # type: ignore[arg-type]
        if earlier is not None:
            for segment in earlier.segments:
                self.emit(TranscriptLine(segment))
        stage = "transcribe" if kind == "transcript" else "describe"
        unit = "clip" if kind == "transcript" else "segment"
        self.emit(InputProgress(name, stage, resumed, total, f"{unit} {resumed} of {total}"))

        def progress(p: TranscriptionProgress) -> None:
            message = p.message if unit == "clip" else p.message.replace("clip", "segment", 1)
            self.emit(InputProgress(name, stage, p.done, p.total, message))

        transcript = transcribe_clips(
            items, transcribe, name=name, total=total, duration_s=duration,
            on_segment=lambda s: self.emit(TranscriptLine(s)), on_progress=progress,
            cancel=self.cancelled, resume=earlier,
        )  # fmt: skip
        self.emit(TranscriptFinished(sha, kind, transcript.to_dict()))  # type: ignore[arg-type]
        if not transcript.complete:
            raise _Stopped
        return transcript

    def _replay(self, transcript: Transcript, sha: str, kind: str) -> None:
        """A transcript made before, streamed into the conversation again (no generation)."""
        self.emit(TranscriptStarted(transcript.name, sha, kind, len(transcript.segments)))  # type: ignore[arg-type]
        for segment in transcript.segments:
            self.emit(TranscriptLine(segment))
        self.emit(TranscriptFinished(sha, kind, transcript.to_dict()))  # type: ignore[arg-type]

    def _over_text(
        self, transcript: Transcript, name: str, what: str, question: str, available: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The transcript (or description) in the prompt: whole when it fits, else the request
        done part by part, for the answer to combine."""
        noun = "transcript" if what == "recording" else "description"
        header = (
            f"The {noun} of the {what} “{name}” ({format_duration(transcript.duration_s or 0)}); "
            "each line starts at the time in brackets:\n"
        )
        body = transcript.text() if transcript.segments else f"[the {noun} would be made here]"
        text = header + body + "\n"
        tokens = self.count(text)
        if tokens <= available or self.render_only:
            return [{"type": "text", "text": text}], tokens
        task = question or DEFAULT_TASK
        what_text = f"The {noun} of the {what} “{name}”"
        map_limit = min(MAP_MAX_TOKENS, self.max_tokens)
        overhead = self.count(
            f"{what_text}, part 99 of 99 (00:00–00:00):\n\n\n\nTask: {task}\n"
            "Do the task for this part only. If this part holds nothing relevant to it, say so "
            "in one line. Keep the timestamps of what you cite."
        )
        part_budget = max(64, self.facts.context_limit - map_limit - overhead - 64)
        parts = transcript_parts(transcript, part_budget, self.count)
        if len(parts) == 1 and tokens <= part_budget and available <= 0:
            raise AppError(
                ErrorKind.CONTEXT_OVERFLOW,
                f"The conversation leaves no room for the {noun} of “{name}”. Start a new "
                "conversation to ask about it.",
            )

        def ask(prompt: str) -> str:
            return self.generate([{"role": "user", "content": prompt}], map_limit)

        def progress(p: Any) -> None:
            self.emit(InputProgress(name, p.stage, p.done, p.total, p.message))

        answers = map_parts(
            parts, task, ask, what=what_text, on_progress=progress, cancel=self._cancel_check
        )
        intro = (
            f"{what_text} is too long to read at once, so the request below was done for each "
            f"of its {len(parts)} parts separately. The partial answers, in order:\n\n"
        )
        outro = (
            "\nCombine the partial answers into one answer to the request, as if written over "
            "the whole; leave out parts that found nothing and keep the timestamps.\n"
        )
        room = max(1, available - self.count(intro + outro))
        answers = reduce_answers(
            answers, task, ask, count=self.count, budget=part_budget, what=what_text,
            fits=room, on_progress=progress, cancel=self._cancel_check,
        )  # fmt: skip
        spans = [p.span for p in parts] if len(answers) == len(parts) else []
        block = intro + answer_blocks(answers, spans) + outro
        self.note(
            f"The {noun} of “{name}” is longer than the context allows, so the request was done "
            f"for each of its {len(parts)} parts and the answers combined."
        )
        return [{"type": "text", "text": block}], self.count(block)

    def _cancel_check(self) -> bool:
        if self.cancelled():
            raise _Stopped
        return False

    # -- videos -----------------------------------------------------------------------------

    def _video(
        self, part: dict[str, Any], question: str, available: int
    ) -> tuple[list[dict[str, Any]], int]:
        cfg = self.cfg
        name = _name(part, "video")
        source = _source(part, "video")
        if not self.facts.exact and self.facts.processor is None:
            raise AppError(
                ErrorKind.UNSUPPORTED,
                f"The video “{name}” cannot be sent to an OpenAI-compatible server; use the "
                "local model.",
            )
        info = probe_video(source, name)
        audio_tokens = 0
        if info.has_audio:
            audio_tokens = recording_tokens(
                info.duration_s, clip_seconds=cfg.max_audio_seconds,
                sampling_rate=cfg.sampling_rate, samples_per_token=cfg.samples_per_token,
                label_tokens=self.count("Sound from 12:30:") + 1,
            )  # fmt: skip
        label_tokens = self.count("Segment 12 (12:00–13:00):") + 1
        fidelity = choose_fidelity(
            total_frames=info.total_frames,
            native_fps=info.native_fps,
            available_tokens=available
            - self.count(f"Video “{name}”, in segments of up to a minute:"),
            tokens_per_frame=lambda budget: frame_tokens(
                info.height, info.width, budget, cfg.video_patch_size, cfg.video_pooling_kernel_size
            ),
            default_budget=cfg.video_budget,
            budgets=SUPPORTED_BUDGETS,
            sampling=cfg.video_sampling,
            audio_tokens=audio_tokens,
            label_tokens=label_tokens,
        )
        decode_segments = partial(
            iter_segments,
            source,
            patch_size=cfg.video_patch_size,
            pooling_kernel_size=cfg.video_pooling_kernel_size,
            name=name,
        )
        if fidelity is not None:
            self.note(fidelity.message(cfg.video_sampling, cfg.video_budget))
            segments = plan_segments(info.total_frames, info.native_fps, sampling=fidelity.sampling)
            decoded = list(decode_segments(segments, budget=fidelity.budget))
            audio = list(self._clips({"audio": source, "name": name})) if info.has_audio else []
            return long_video_content(decoded, audio, name=name), fidelity.tokens
        segments = plan_segments(info.total_frames, info.native_fps, sampling=cfg.video_sampling)
        self.note(
            f"The video “{name}” ({format_duration(info.duration_s)}) does not fit the context "
            f"even with fewer frames, so it was described segment by segment ({len(segments)} "
            "segments) and the answer is over the descriptions."
        )
        sha = str(part.get("sha256", ""))
        known = self.transcripts.get(sha) if sha else None
        earlier = Transcript.from_dict(known) if known else None
        if earlier is not None and earlier.complete or self.render_only:
            description = earlier or Transcript(name, duration_s=info.duration_s)
            if earlier is not None and not known.get("shown", True):
                self._replay(earlier, sha, "description")
        else:
            limit = min(DESCRIBE_MAX_TOKENS, self.max_tokens)
            decoded = (
                _SegmentItem(d.segment.index, d.segment.start_s, d.segment.end_s, d)
                for d in decode_segments(segments, budget=cfg.video_budget)
            )
            description = self._run_transcript(
                name, sha, "description", len(segments), info.duration_s, decoded,
                lambda item: self.generate(describe_request(item.decoded, name), limit), earlier,
            )  # fmt: skip
        return self._over_text(description, name, "video", question, available)


@dataclass(frozen=True)
class _SegmentItem:
    """A decoded video segment in the shape `transcribe_clips` walks (index, start, end)."""

    index: int
    start_s: float
    end_s: float
    decoded: Any


__all__ = [
    "Prepared",
    "is_long_part",
    "needs_preparation",
    "prepare_messages",
]
