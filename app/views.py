"""Plain data the front ends show: messages with their tool cards, conversations, the model's
status, numbers of the last answer. Built from the store and the engine's events, Qt-free.

`message_views(storage, conversation_id)` turns stored rows into `MessageView`s: a tool's
result completes the card of the call on the answer that made it, an error carries the
hint of its kind (`app.errors.user_hint`), the stats become `GenerationStats` again.
`MessageView.attachments` holds the app's `Attachment`s; the GUI swaps in its previews.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.attachments import Attachment
from app.engines.contract import GenerationStats
from app.errors import ErrorKind, user_hint
from app.storage import Storage
from app.storage.conversations import Message

_STATS_FIELDS = {f.name for f in dataclasses.fields(GenerationStats)}


@dataclass
class ToolCardView:
    """A tool call the model made and, once run, its result or error."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    call_id: str = ""
    done: bool = False


@dataclass
class MessageView:
    """One message of a conversation, complete or still streaming."""

    id: str
    role: str  # "user" | "assistant" | "system" | "tool"
    text: str = ""
    thinking: str = ""
    thinking_seconds: float | None = None
    attachments: list[Any] = field(default_factory=list)
    tools: list[ToolCardView] = field(default_factory=list)
    error: str | None = None
    error_hint: str = ""  # what the user can do about the error (from its kind)
    streaming: bool = False
    stats: GenerationStats | None = None
    version: int = 1  # which version of this message is shown (an edit, a regeneration)
    versions: int = 1  # how many there are
    notes: list[str] = field(default_factory=list)  # about long inputs: pages used, sampling
    transcript: dict[str, Any] | None = None  # a transcript message: `Transcript.to_dict()`

    @property
    def stopped(self) -> bool:
        """The user stopped this answer before it was complete."""
        return self.stats is not None and self.stats.stop_reason == "cancelled"


@dataclass
class TrashedChat:
    """A conversation in the trash."""

    id: str
    title: str
    deleted_at: float
    days_left: int


@dataclass(frozen=True)
class PrefillView:
    """A long prompt being read before the answer's first token (`eta_s` None: unknown)."""

    done: int
    total: int
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def text(self) -> str:
        """E.g. "Reading the prompt: 3,072 of 12,288 tokens (25%), about 14 s left"."""
        read = f"Reading the prompt: {self.done:,} of {self.total:,} tokens ({self.fraction:.0%})"
        return f"{read}, {time_left(self.eta_s)}" if self.eta_s else read


def time_left(seconds: float) -> str:
    """A rounded duration for people: "about 14 s left", "about 3 min left"."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"


@dataclass
class InputProgressView:
    """A long input being prepared for an answer: a transcription's progress or a note."""

    name: str = ""  # the recording, video or document
    message: str = ""  # "clip 37 of 120, 14 min left"
    fraction: float | None = None
    stage: str = ""  # "transcribe" | "describe" | "map" | "reduce"
    note: str = ""
    done: bool = False  # preparing is over (the answer is streaming or the turn ended)


@dataclass
class ConversationSummary:
    id: str
    title: str
    updated_at: float = 0.0
    generating: bool = False


@dataclass
class ModelStatus:
    """What the status line shows about the model."""

    state: str = "none"  # "none" | "loading" | "ready" | "unloaded" (reloads when needed) | "error"
    name: str = ""
    precision: str = ""
    path: str = ""
    progress: float = 0.0  # 0..1 while loading
    context_limit: int = 0
    message: str = ""


@dataclass
class RunStats:
    """Numbers of the last answer and the machine, for the status line."""

    tokens_per_s: float = 0.0
    context_used: int = 0
    context_limit: int = 0
    memory_bytes: int = 0


def message_view(
    message: Message, storage: Storage, live: tuple[str, str] | None = None
) -> MessageView:
    """One stored message as shown (`live`: the text and thinking streamed so far)."""
    text, thinking = message.text, message.thinking
    if live is not None and message.status == "streaming":
        text, thinking = live
    stats = message.stats or {}
    kind = stats.get("error_kind", ErrorKind.INTERNAL) if message.status == "error" else None
    attachments = []
    for ref in message.attachments:
        record = storage.media.find(ref.sha256)
        if record is not None:
            attachments.append(Attachment.from_record(record, ref.filename))
    return MessageView(
        id=str(message.id),
        role=message.role,
        text=text,
        thinking=thinking,
        thinking_seconds=stats.get("extra", {}).get("thinking_s"),
        attachments=attachments,
        tools=[
            ToolCardView(c.get("name", ""), c.get("arguments", {}), call_id=c.get("id", ""))
            for c in message.tool_calls or []
        ],
        error=message.error if message.status == "error" else None,
        error_hint=user_hint(kind),
        streaming=message.status == "streaming",
        stats=stats_of(stats),
        notes=list(stats.get("input_notes", [])),
        transcript=stats.get("transcript"),
    )


def message_views(
    storage: Storage, conversation_id: int, live: Mapping[int, tuple[str, str]] | None = None
) -> list[MessageView]:
    """A conversation's messages as shown: tool results merged into their answer's cards."""
    views: list[MessageView] = []
    versions = storage.conversations.version_counts(conversation_id)
    for message in storage.conversations.messages(conversation_id):
        if message.role == "tool":
            target = next((v for v in reversed(views) if v.role == "assistant"), None)
            if target is not None:
                merge_tool(target, tool_card(message))
        elif message.role != "system":
            view = message_view(message, storage, (live or {}).get(message.id))
            view.version, view.versions = versions.get(message.id, (1, 1))
            views.append(view)
    return views


def tool_card(message: Message) -> ToolCardView:
    """A stored tool message as the finished card of its call."""
    result = message.tool_result or {}
    call = result.get("call") or {}
    return ToolCardView(
        call.get("name", ""),
        call.get("arguments", {}),
        result.get("result"),
        result.get("error"),
        call.get("id", ""),
        done=True,
    )


def merge_tool(target: MessageView, card: ToolCardView) -> None:
    """Put a finished card in place of its call's card (or add it)."""
    for index, existing in enumerate(target.tools):
        if existing.call_id == card.call_id or (not existing.done and existing.name == card.name):
            target.tools[index] = card
            return
    target.tools.append(card)


def stats_of(stats: Mapping[str, Any] | None) -> GenerationStats | None:
    """Stored stats (a dict) as `GenerationStats`, or None."""
    if not stats:
        return None
    return GenerationStats(**{k: v for k, v in stats.items() if k in _STATS_FIELDS})


def answer_stats(stats: GenerationStats | None) -> tuple[str, str]:
    """An answer's numbers under it, and the tooltip that explains them ("" when none).

    "23.4 tok/s · first token 0.42 s"; with speculative decoding "23.4 tok/s · 71% of
    guesses kept · first token 0.42 s", the tooltip counting the drafted and accepted tokens
    and the mean accepted per round.
    """
    if stats is None or not (stats.decode_tps or stats.ttft_s):
        return "", ""
    parts, tips = [], []
    if stats.decode_tps:
        parts.append(f"{stats.decode_tps:.1f} tok/s")
        tips.append(f"{stats.generated_tokens} tokens at {stats.decode_tps:.1f} tokens per second")
    drafting = stats.extra.get("speculative") if isinstance(stats.extra, Mapping) else None
    if drafting and drafting.get("drafted"):
        rate = drafting.get("acceptance_rate", 0.0)
        parts.append(f"{rate:.0%} of guesses kept")
        tips.append(
            f"speculative decoding: {drafting['drafted']} tokens drafted, "
            f"{drafting.get('accepted', 0)} accepted ({rate:.0%}), "
            f"{drafting.get('mean_accepted_length', 0.0):.2f} accepted per check"
        )
    if stats.ttft_s:
        parts.append(f"first token {stats.ttft_s:.2f} s")
        tips.append(f"the first token after {stats.ttft_s:.2f} s")
    return " · ".join(parts), "; ".join(tips) + "."


def run_stats(stats: GenerationStats, context_limit: int = 0) -> RunStats:
    """The status line's numbers from an answer's stats."""
    return RunStats(
        stats.decode_tps,
        stats.context_tokens,
        stats.context_limit or context_limit,
        stats.peak_memory_bytes,
    )


def trashed_chats(storage: Storage, now: float | None = None) -> list[TrashedChat]:
    """The conversations in the trash, most recently deleted first, with the days they have left."""
    import math
    import time

    from app.storage.conversations import TRASH_RETENTION_S

    now = time.time() if now is None else now
    return [
        TrashedChat(
            str(c.id), c.title, c.deleted_at or now,
            max(0, math.ceil(((c.deleted_at or now) + TRASH_RETENTION_S - now) / 86400)),
        )
        for c in storage.conversations.list_trash()
    ]  # fmt: skip


def conversation_summaries(
    storage: Storage, generating: Callable[[int], bool], query: str = ""
) -> list[ConversationSummary]:
    """The conversations (those matching `query`, when given), most recent first."""
    store = storage.conversations
    if query:
        ids = dict.fromkeys(hit.conversation_id for hit in store.search(query))
        found = [store.get_conversation(cid) for cid in ids]
    else:
        found = store.list_conversations()
    return [ConversationSummary(str(c.id), c.title, c.updated_at, generating(c.id)) for c in found]
