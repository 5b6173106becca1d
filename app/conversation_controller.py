"""Glue between the store and the engine service: send, stream into storage, regenerate, edit.

One `ConversationController` serves the GUI and the terminal chat alike:

- `send(conversation_id, text, attachments)` appends the user message (committed before
  anything else happens), adds an empty assistant message with status `streaming`,
  renders the conversation to Hugging Face chat messages (attachments as content parts
  pointing at the stored media files) and submits a generation job;
- engine events stream into the assistant message through a `StreamingWriter` (flushed
  at least every 0.5 s); a tool call the engine ran closes the assistant message and adds
  a `tool` message, and the answer continues in a new assistant message;
- the end sets status `done` (stats recorded, also after a cancel) or `error` (text kept);
- `regenerate` and `edit_and_resend` keep the old messages as superseded versions (a
  branch); `switch_version` shows another one;
- `delete_conversation` stops an answer still being written into the chat (keeping what
  it had written) before the chat goes to the trash, so nothing lands in the trash;
- each chat's own options (`Conversation.options`: the preset it started from, sampling,
  thinking, whether tools are offered) apply over the settings;
- long inputs (`app.inputs`): a recording or video transcribed (described) before the answer
  streams into an assistant message of its own, marked by `stats["transcript"]` (searchable
  and exported like any message, reused by later turns instead of the media, and never
  sent back as a model turn); the answer follows in a new message carrying the notes
  (`stats["input_notes"]`: which pages were used, how a video was sampled). A cancel keeps
  the transcript so far; the next turn continues it.

Controller events (`subscribe`) say which message changed, for views: `MessageAdded`,
`MessageDelta`, `MessageProgress` (a long prompt being read, never stored),
`MessageFinished`, `TurnFinished`, and `InputProgressed` (a transcription's progress, a
note). They are called on the engine service
thread; `app.controller_signals.ControllerSignals` re-emits them as queued Qt signals.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.engine_service import EngineOutput, EngineService, Job, JobDone, JobFailed, ServiceEvent
from app.engines.contract import (
    Finished,
    GenerationError,
    PrefillProgress,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
)
from app.inputs.events import (
    InputNote,
    InputProgress,
    TranscriptFinished,
    TranscriptLine,
    TranscriptStarted,
)
from app.inputs.run import InputContext
from app.media_budget import MediaBudget, check_attachments
from app.messages import assistant_message, tool_message
from app.options import GenerationOptions
from app.presets import check_options, generation_overrides
from app.settings import DEFAULTS, Settings, SettingsStore
from app.storage import Storage
from app.storage.conversations import Conversation, Message, StorageError
from app.streaming_writer import FLUSH_INTERVAL_S, StreamingWriter
from app.subscribers import Subscribers

log = logging.getLogger(__name__)

TITLE_LENGTH = 60
STOPPED_BY_TRASH = "Stopped: the chat was moved to the trash."


# -- controller events ------------------------------------------------------------------


@dataclass(frozen=True)
class MessageAdded:
    conversation_id: int
    message_id: int
    role: str


@dataclass(frozen=True)
class MessageDelta:
    """New streamed text for a message (not yet necessarily flushed to disk)."""

    conversation_id: int
    message_id: int
    text: str = ""
    thinking: str = ""


@dataclass(frozen=True)
class MessageProgress:
    """The engine is reading a long prompt before the message's first token."""

    conversation_id: int
    message_id: int
    done: int  # prompt tokens in the cache
    total: int
    eta_s: float | None  # seconds left (None: no estimate yet)


@dataclass(frozen=True)
class MessageFinished:
    conversation_id: int
    message_id: int
    status: str  # "done" | "error"
    error: str | None


@dataclass(frozen=True)
class TurnFinished:
    turn: Turn


@dataclass(frozen=True)
class InputProgressed:
    """Preparing a long input: a transcription's progress (`progress`), a note (`note`), or
    the end of a transcription (`finished`)."""

    conversation_id: int
    message_id: int
    progress: InputProgress | None = None
    note: str = ""
    finished: bool = False


ControllerEvent = (
    MessageAdded | MessageDelta | MessageProgress | MessageFinished | TurnFinished | InputProgressed
)


@dataclass(eq=False)
class Turn:
    """One request/answer exchange in flight (or finished)."""

    conversation_id: int
    user_message_id: int | None  # None for regenerate
    assistant_message_ids: list[int]  # more than one when tools were called
    job: Job
    status: str = "streaming"  # then "done" | "error" | "cancelled"
    error: str | None = None
    stats: dict[str, Any] | None = None
    trashed: bool = False  # the chat went to the trash mid-answer: store nothing more
    thinking: dict[int, list[float]] = field(default_factory=dict)  # message -> [start, end?]
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    notes: list[str] = field(default_factory=list)  # about long inputs, for the answer
    transcript_ids: list[int] = field(default_factory=list)  # transcript messages it made
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def assistant_message_id(self) -> int:
        """The message holding the latest part of the answer."""
        return self.assistant_message_ids[-1]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the answer is complete and stored."""
        return self._finished.wait(timeout)

    @property
    def done(self) -> bool:
        return self._finished.is_set()


def render_message_content(
    message: Message,
    media_path: Callable[[str], str],
    media_meta: Callable[[str], dict[str, Any]] | None = None,
) -> Any:
    """A stored message's content in Hugging Face chat shape (str, or parts when it has media).

    Audio, video and documents carry what preparing long inputs needs (`app.inputs`): their
    name and hash, a duration or a document's MIME type (from `media_meta`).
    """
    if not message.attachments:
        return message.text
    parts: list[dict[str, Any]] = []
    for a in message.attachments:
        try:
            path = media_path(a.sha256)
        except KeyError:
            path = ""
        if path and Path(path).is_file():
            part: dict[str, Any] = {"type": a.kind, "path": path}
            if a.kind in ("audio", "video", "document"):
                meta = media_meta(a.sha256) if media_meta is not None else {}
                part.update(name=a.filename, sha256=a.sha256)
                if meta.get("duration_s") is not None:
                    part["duration_s"] = meta["duration_s"]
                if a.kind == "document":
                    part["mime"] = meta.get("mime", "")
            parts.append(part)
        else:  # a lost media file must not make the whole conversation unanswerable
            parts.append(
                {"type": "text", "text": f"[attachment no longer available: {a.filename}]"}
            )
    if message.text:
        parts.append({"type": "text", "text": message.text})
    return parts


def render_chat(
    messages: Sequence[Message],
    media_path: Callable[[str], str],
    system_prompt: str | None = None,
    media_meta: Callable[[str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Stored messages -> Hugging Face chat messages for `Engine.stream`.

    Superseded messages, failed empty answers and transcript messages (their text goes in
    where the recording was) are left out; thinking is not sent back (the template strips
    earlier thoughts anyway); tool calls and their results become the same messages the
    agent loop appends (`app.messages`).
    """
    chat: list[dict[str, Any]] = []
    if system_prompt:
        chat.append({"role": "system", "content": system_prompt})
    for m in messages:
        if m.superseded_at is not None:
            continue
        if m.role == "system":
            if chat and chat[0]["role"] == "system":
                chat[0] = {"role": "system", "content": m.text}
            else:
                chat.insert(0, {"role": "system", "content": m.text})
        elif m.role == "user":
            content = render_message_content(m, media_path, media_meta)
            chat.append({"role": "user", "content": content})
        elif m.role == "assistant":
            if m.status == "streaming" or (not m.text and not m.tool_calls):
                continue
            if is_transcript(m):
                continue
            calls = [
                ToolCall(c["name"], c.get("arguments", {}), c.get("id") or f"call_{m.id}_{i}")
                for i, c in enumerate(m.tool_calls or [])
            ]
            chat.append(assistant_message(m.text, calls=calls))
        elif m.role == "tool":
            result = m.tool_result or {}
            call = result.get("call") or {}
            answered = ToolCall(call.get("name", ""), call.get("arguments", {}), call.get("id", ""))
            chat.append(tool_message(answered, result.get("result"), result.get("error")))
    return chat


def is_transcript(message: Message) -> bool:
    """Is this assistant message a transcript (or a video's description) made for an answer?"""
    return bool((message.stats or {}).get("transcript"))


def known_transcripts(messages: Sequence[Message]) -> dict[str, dict[str, Any]]:
    """Media hash -> the latest transcript of it in these messages (`Transcript.to_dict()`,
    with `shown`: False when its message was superseded, e.g. by Regenerate)."""
    found: dict[str, dict[str, Any]] = {}
    for m in messages:
        transcript = (m.stats or {}).get("transcript")
        if transcript and transcript.get("sha256"):
            transcript = {**transcript, "shown": m.superseded_at is None}
            earlier = found.get(transcript["sha256"])
            if earlier is None or not earlier.get("complete") or transcript.get("complete"):
                found[transcript["sha256"]] = transcript
    return found


def title_from(text: str) -> str:
    """A conversation title from the first user message: its first line, shortened."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= TITLE_LENGTH:
        return line
    return line[: TITLE_LENGTH - 1].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


class ConversationController:
    """Send messages, stream answers into storage, regenerate and edit; see module docstring."""

    def __init__(
        self,
        storage: Storage,
        service: EngineService,
        settings: SettingsStore | Settings | None = None,
        *,
        flush_interval: float = FLUSH_INTERVAL_S,
        tools: Sequence[Any] | None = None,
    ) -> None:
        self.storage = storage
        self.store = storage.conversations
        self.service = service
        self.media_budget = MediaBudget()  # what one message may carry (checked before sending)
        self._settings = settings
        self.tools = tools
        self.writer = StreamingWriter(self.store, interval=flush_interval)
        self._lock = threading.RLock()
        self._turns: dict[int, Turn] = {}  # job id -> turn
        self._subscribers: Subscribers[ControllerEvent] = Subscribers("controller")
        self._unsubscribe_service = service.subscribe(self._on_service_event)

    # -- settings -------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        if isinstance(self._settings, SettingsStore):
            return self._settings.settings
        return self._settings or DEFAULTS

    def generation_options(self, **overrides: Any) -> GenerationOptions:
        """The options from the settings, then the `overrides` that are not None."""
        return self.settings.generation_options().merged(overrides)

    def chat_options(self, conversation_id: int) -> dict[str, Any]:
        """The chat's own generation options (over the settings), as `generation_options` keywords."""
        return generation_overrides(self.store.get_conversation(conversation_id).options)

    def set_chat_options(self, conversation_id: int, **changes: Any) -> Conversation:
        """Change a chat's own options (`app.presets.CHAT_OPTION_NAMES`; None removes one:
        the settings' value applies again) and `system_prompt` (None: the Settings' one).
        A bad value raises `OptionError` naming it, and nothing is stored."""
        conv = self.store.get_conversation(conversation_id)
        options = dict(conv.options)
        for name, value in changes.items():
            if name != "system_prompt":
                options[name] = value
        fields: dict[str, Any] = {"options": check_options(options)}
        if "system_prompt" in changes:
            fields["system_prompt"] = changes["system_prompt"]
        return self.store.update_conversation(conversation_id, **fields)

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[ControllerEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` for every controller event; returns an unsubscribe."""
        return self._subscribers.subscribe(callback)

    def _notify(self, event: ControllerEvent) -> None:
        self._subscribers.emit(event)

    # -- conversations --------------------------------------------------------------------

    def new_conversation(
        self,
        title: str = "",
        *,
        folder_id: int | None = None,
        system_prompt: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Conversation:
        """A new chat (`system_prompt`, `options`: its own, e.g. from a preset)."""
        return self.store.create_conversation(
            title,
            folder_id=folder_id,
            model=self.service.model_path or "",
            system_prompt=system_prompt,
            options=options,
        )

    def delete_conversation(self, conversation_id: int) -> None:
        """Move a chat to the trash; an answer still being written stops first and keeps
        what it had (marked stopped), so nothing is ever written into the trash."""
        for turn in self._turns_of(conversation_id):
            with turn.lock:
                turn.trashed = True
                mid = turn.assistant_message_id
                if mid in self.writer.active:
                    self.writer.finish(
                        mid,
                        status="error",
                        error=STOPPED_BY_TRASH,
                        stats={"error_kind": "cancelled"},
                    )
            turn.job.cancel()
        self.store.delete_conversation(conversation_id)

    def switch_version(self, message_id: int) -> list[int]:
        """Show the branch through `message_id` (not while that chat is answering)."""
        message = self.store.get_message(message_id)
        if self.active_turn(message.conversation_id) is not None:
            raise StorageError(
                "Wait for the answer to finish (or stop it) before switching versions."
            )
        return self.store.switch_version(message_id)

    def _turns_of(self, conversation_id: int) -> list[Turn]:
        with self._lock:
            return [t for t in self._turns.values() if t.conversation_id == conversation_id]

    def render(self, conversation_id: int) -> list[dict[str, Any]]:
        """The conversation as Hugging Face chat messages (what `generate` would send)."""
        conv = self.store.get_conversation(conversation_id)
        system = (
            conv.system_prompt if conv.system_prompt is not None else self.settings.system_prompt
        )
        messages = self.store.messages(conversation_id)
        return render_chat(messages, self._media_path, system or None, self._media_meta)

    def _media_path(self, sha256: str) -> str:
        return str(self.storage.media.path_of(sha256))

    def _media_meta(self, sha256: str) -> dict[str, Any]:
        record = self.storage.media.find(sha256)
        return {**record.meta, "mime": record.mime} if record is not None else {}

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        conversation_id: int,
        text: str,
        attachments: Sequence[Any] = (),
        **generation_overrides: Any,
    ) -> Turn:
        """Store the user's message now, then start generating the answer.

        `attachments` are `app.attachments.Attachment` objects (already in the media store).
        """
        if not text.strip() and not attachments:
            raise StorageError("There is nothing to send: write a message or attach a file.")
        # Recordings and videos longer than one clip are read clip by clip (app.inputs): the
        # budget of what one prompt decodes at once counts the rest.
        short = [a for a in attachments if not getattr(a, "meta", {}).get("long")]
        check_attachments(short, self.media_budget)  # a MediaError names what is over
        refs = [(a.sha256, a.kind, a.filename) for a in attachments]
        user = self.store.add_message(conversation_id, "user", text, attachments=refs)
        self._notify(MessageAdded(conversation_id, user.id, "user"))
        conv = self.store.get_conversation(conversation_id)
        if not conv.title and text.strip():
            self.store.rename_conversation(conversation_id, title_from(text))
        return self._start_turn(conversation_id, user.id, generation_overrides)

    def regenerate(self, conversation_id: int, **generation_overrides: Any) -> Turn:
        """Answer the last user message again; the previous answer stays as an older version."""
        messages = self.store.messages(conversation_id)
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        if last_user is None:
            raise StorageError("There is no question to answer again in this conversation.")
        old = [m for m in messages if m.position > last_user.position]
        self.store.supersede_from(conversation_id, last_user.position + 1)
        replaces = next((m.id for m in old if m.role == "assistant"), None)
        return self._start_turn(conversation_id, None, generation_overrides, replaces_id=replaces)

    def edit_and_resend(
        self,
        message_id: int,
        text: str,
        attachments: Sequence[Any] | None = None,
        **generation_overrides: Any,
    ) -> Turn:
        """Replace a user message with an edited copy and answer it; what followed is kept as superseded."""
        original = self.store.get_message(message_id)
        if original.role != "user":
            raise StorageError("Only your own messages can be edited.")
        if original.superseded_at is not None:
            raise StorageError("This message has already been replaced by a newer version.")
        if attachments is None:
            refs = [(a.sha256, a.kind, a.filename) for a in original.attachments]
        else:
            refs = [(a.sha256, a.kind, a.filename) for a in attachments]
        if not text.strip() and not refs:
            raise StorageError("There is nothing to send: write a message or attach a file.")
        cid = original.conversation_id
        with self.storage.db.transaction():
            self.store.supersede_from(cid, original.position)
            user = self.store.add_message(
                cid, "user", text, attachments=refs, replaces_id=original.id
            )
        self._notify(MessageAdded(cid, user.id, "user"))
        return self._start_turn(cid, user.id, generation_overrides)

    def cancel(self, conversation_id: int | None = None) -> None:
        """Stop the answer being generated (for one conversation, or all)."""
        with self._lock:
            jobs = [
                t.job for t in self._turns.values() if conversation_id in (None, t.conversation_id)
            ]
        for job in jobs:
            job.cancel()

    def active_turn(self, conversation_id: int) -> Turn | None:
        with self._lock:
            return next(
                (t for t in self._turns.values() if t.conversation_id == conversation_id), None
            )

    def close(self) -> None:
        """Stop listening to the service and flush everything still buffered."""
        self._unsubscribe_service()
        self.writer.close()

    def _start_turn(
        self,
        conversation_id: int,
        user_message_id: int | None,
        overrides: dict[str, Any],
        *,
        replaces_id: int | None = None,
    ) -> Turn:
        chat = self.render(conversation_id)
        chat_options = self.chat_options(conversation_id)
        offer_tools = self.store.get_conversation(conversation_id).options.get("tools", True)
        tools = overrides.pop("tools", self.tools if offer_tools else None)
        # The settings, then the chat's own options, then this call's: checked before
        # anything is stored.
        options = self.generation_options(**{**chat_options, **{
            k: v for k, v in overrides.items() if v is not None}})  # fmt: skip
        assistant = self.store.add_message(
            conversation_id, "assistant", status="streaming", replaces_id=replaces_id
        )
        self.writer.begin(assistant.id)
        with self._lock:
            # Register before submitting so no event of the job can arrive unrouted.
            # The engine keeps one prompt cache per conversation: the next turn prefills
            # only what is new.
            seen = self.store.messages(conversation_id, include_superseded=True)
            transcripts = known_transcripts(seen)
            job = self.service.generate(
                chat,
                tools=tools,
                options=options,
                conversation_id=self.store.get_conversation(conversation_id).uuid,
                inputs=InputContext(transcripts),
            )
            turn = Turn(conversation_id, user_message_id, [assistant.id], job)
            self._turns[job.id] = turn
        self._notify(MessageAdded(conversation_id, assistant.id, "assistant"))
        return turn

    # -- engine events (service thread) ---------------------------------------------------

    def _on_service_event(self, event: ServiceEvent) -> None:
        with self._lock:
            turn = self._turns.get(event.job_id)
        if turn is None:
            return
        try:
            with turn.lock:
                if turn.trashed:
                    self._handle_trashed(turn, event)
                else:
                    self._handle(turn, event)
        except Exception as exc:  # storage trouble must not kill the service thread
            log.exception(
                "storing %s of the answer in conversation %s (message %s) failed",
                type(event).__name__, turn.conversation_id, turn.assistant_message_id,
            )  # fmt: skip
            turn.error = f"Could not save the answer: {exc}"

    def _handle_trashed(self, turn: Turn, event: ServiceEvent) -> None:
        """The chat is in the trash: nothing more is stored; the turn just ends."""
        if isinstance(event, JobDone):
            with self._lock:
                self._turns.pop(event.job_id, None)
            turn.status = "cancelled"
            turn._finished.set()
            self._notify(TurnFinished(turn))

    def _handle(self, turn: Turn, event: ServiceEvent) -> None:
        cid, mid = turn.conversation_id, turn.assistant_message_id
        if isinstance(event, EngineOutput):
            inner = event.event
            self._time_thinking(turn, mid, inner)
            if isinstance(inner, TextDelta):
                self.writer.append_text(mid, inner.text)
                self._notify(MessageDelta(cid, mid, text=inner.text))
            elif isinstance(inner, ThinkingDelta):
                self.writer.append_thinking(mid, inner.text)
                self._notify(MessageDelta(cid, mid, thinking=inner.text))
            elif isinstance(inner, PrefillProgress):
                self._notify(MessageProgress(cid, mid, inner.done, inner.total, inner.eta_s))
            elif isinstance(inner, ToolCallEvent):
                call = _call_dict(inner.call)
                self.writer.set_tool_calls(mid, [*self.writer.tool_calls_of(mid), call])
                self.writer.flush(mid)
            elif isinstance(inner, ToolResultEvent):
                self._tool_result(turn, inner)
            elif isinstance(inner, InputNote | InputProgress | TranscriptStarted):
                self._input_event(turn, inner)
            elif isinstance(inner, TranscriptLine):
                self.writer.append_text(mid, inner.text)
                self._notify(MessageDelta(cid, mid, text=inner.text))
            elif isinstance(inner, TranscriptFinished):
                self._transcript_finished(turn, inner)
            elif isinstance(inner, Finished):
                stats = self._with_thinking_time(turn, mid, dataclasses.asdict(inner.stats))
                if turn.notes:
                    stats["input_notes"] = list(turn.notes)
                turn.stats = stats
                cancelled = inner.stats.stop_reason == "cancelled"
                turn.status = "cancelled" if cancelled else "done"
                if mid in self.writer.active:  # not when a cancel ended a transcript
                    self._finish_message(turn, "done", stats=stats)
            elif isinstance(inner, GenerationError):
                turn.status, turn.error = "error", inner.message
                log.warning(
                    "answer in conversation %s (message %s) failed: %s: %s",
                    cid, mid, inner.kind, inner.message,
                )  # fmt: skip
                self._finish_message(turn, "error", error=inner.message, kind=inner.kind)
        elif isinstance(event, JobFailed):
            log.warning(
                "generation job %s for conversation %s (message %s) failed: %s: %s",
                event.job_id, cid, mid, event.kind, event.message,
            )  # fmt: skip
            turn.status, turn.error = "error", event.message
            if mid in self.writer.active:
                self._finish_message(turn, "error", error=event.message, kind=event.kind)
        elif isinstance(event, JobDone):
            if mid in self.writer.active:  # cancelled before it started, or no final event
                status = "cancelled" if event.cancelled else "error"
                turn.status = status
                msg = turn.error or (
                    "Stopped before the answer began."
                    if event.cancelled
                    else "The answer ended unexpectedly."
                )
                self._finish_message(turn, "error", error=msg)
            with self._lock:
                self._turns.pop(event.job_id, None)
            turn._finished.set()
            self._notify(TurnFinished(turn))

    def _time_thinking(self, turn: Turn, mid: int, event: Any) -> None:
        """Note when a message's thinking starts and ends (kept as `stats.extra.thinking_s`)."""
        span = turn.thinking.get(mid)
        if isinstance(event, ThinkingDelta):
            if span is None:
                turn.thinking[mid] = [time.monotonic()]
        elif span is not None and len(span) == 1:
            span.append(time.monotonic())  # the first thing after the thinking ends it

    def _with_thinking_time(self, turn: Turn, mid: int, stats: dict[str, Any]) -> dict[str, Any]:
        span = turn.thinking.get(mid)
        if span is not None:
            seconds = (span[1] if len(span) > 1 else time.monotonic()) - span[0]
            stats["extra"] = {**(stats.get("extra") or {}), "thinking_s": round(seconds, 2)}
        return stats

    def _finish_message(
        self,
        turn: Turn,
        status: str,
        *,
        stats: dict[str, Any] | None = None,
        error: str | None = None,
        kind: str | None = None,
    ) -> None:
        mid = turn.assistant_message_id
        if kind is not None:  # an error message records its kind (the GUI's hint comes from it)
            stats = {**(stats or {}), "error_kind": str(kind)}
        self.writer.finish(mid, status=status, stats=stats, error=error)  # type: ignore[arg-type]
        self._notify(MessageFinished(turn.conversation_id, mid, status, error))

    def _input_event(self, turn: Turn, event: Any) -> None:
        cid, mid = turn.conversation_id, turn.assistant_message_id
        if isinstance(event, InputNote):
            turn.notes.append(event.text)
            self._notify(InputProgressed(cid, mid, note=event.text))
        elif isinstance(event, InputProgress):
            self._notify(InputProgressed(cid, mid, progress=event))
        elif isinstance(event, TranscriptStarted):
            # The (still empty) answer message becomes the transcript; the answer follows.
            turn.transcript_ids.append(mid)
            self._notify(InputProgressed(cid, mid, note=""))

    def _transcript_finished(self, turn: Turn, event: TranscriptFinished) -> None:
        cid = turn.conversation_id
        transcript = {**event.transcript, "sha256": event.sha256, "kind": event.kind}
        self._finish_message(turn, "done", stats={"transcript": transcript})
        self._notify(InputProgressed(cid, turn.assistant_message_id, finished=True))
        if not transcript.get("complete"):
            return  # cancelled: the transcript so far is kept, no answer follows
        follow = self.store.add_message(cid, "assistant", status="streaming")
        self.writer.begin(follow.id)
        turn.assistant_message_ids.append(follow.id)
        self._notify(MessageAdded(cid, follow.id, "assistant"))

    def _tool_result(self, turn: Turn, event: ToolResultEvent) -> None:
        cid = turn.conversation_id
        # Close the assistant part that made the call, record the result, continue in a new message.
        self._finish_message(turn, "done")
        tool_msg = self.store.add_message(
            cid,
            "tool",
            tool_result={
                "call": _call_dict(event.call),
                "result": _jsonable(event.result),
                "error": event.error,
            },
        )
        self._notify(MessageAdded(cid, tool_msg.id, "tool"))
        follow = self.store.add_message(cid, "assistant", status="streaming")
        self.writer.begin(follow.id)
        turn.assistant_message_ids.append(follow.id)
        self._notify(MessageAdded(cid, follow.id, "assistant"))


def _call_dict(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": _jsonable(call.arguments)}


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))
