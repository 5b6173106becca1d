"""Writes an assistant message to the store while it streams, at least every `interval` seconds.

Deltas are collected in memory (cheap, any thread); a background thread writes the
accumulated text and thinking of a message in one small transaction at most
`FLUSH_AT` × `interval` (0.4 s of 0.5 s) after the oldest delta not yet written arrived,
leaving the rest of the interval for the thread to wake and the write to commit, and
touches idle streaming messages every `heartbeat_s` so other processes can tell a live
stream from one whose process died (`ConversationStore.recover_interrupted`). `finish`
flushes synchronously and sets the final status, so a crash loses at most the last
`interval` of text. The schedule reads an injectable `clock`, and `run_due` is the whole
of one tick, so tests check the promise without a thread or wall time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.storage.conversations import ConversationStore, MessageStatus

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
FLUSH_AT = 0.8  # write this fraction of the interval after the oldest unwritten delta
HEARTBEAT_S = 5.0


@dataclass
class _Buffer:
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None
    dirty: bool = False
    dirty_since: float = 0.0  # when the oldest delta not yet written arrived
    last_write: float = 0.0


class StreamingWriter:
    """Buffers streamed deltas per message and flushes them to a `ConversationStore`."""

    def __init__(
        self,
        store: ConversationStore,
        *,
        interval: float = FLUSH_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> None:
        self.store = store
        self.interval = interval
        self.heartbeat_s = heartbeat_s
        self._clock = clock
        self._buffers: dict[int, _Buffer] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self.flush_count = 0  # flushes that wrote something (for tests and diagnostics)
        self._thread = threading.Thread(target=self._run, name="streaming-writer", daemon=True)
        if start:  # start=False: the caller drives `run_due` itself (tests)
            self._thread.start()

    def begin(self, message_id: int, *, text: str = "", thinking: str = "") -> None:
        """Start buffering a message that is already in the store with status `streaming`."""
        with self._lock:
            self._buffers[message_id] = _Buffer(
                text=[text] if text else [],
                thinking=[thinking] if thinking else [],
                last_write=self._clock(),
            )

    def append_text(self, message_id: int, text: str) -> None:
        with self._lock:
            buf = self._buffers[message_id]
            buf.text.append(text)
            self._mark_dirty(buf)

    def append_thinking(self, message_id: int, text: str) -> None:
        with self._lock:
            buf = self._buffers[message_id]
            buf.thinking.append(text)
            self._mark_dirty(buf)

    def set_tool_calls(self, message_id: int, tool_calls: list[dict[str, Any]]) -> None:
        with self._lock:
            buf = self._buffers[message_id]
            buf.tool_calls = list(tool_calls)
            self._mark_dirty(buf)

    def _mark_dirty(self, buf: _Buffer) -> None:
        if not buf.dirty:
            buf.dirty = True
            buf.dirty_since = self._clock()
            self._wake.set()  # the thread may be sleeping until a heartbeat

    def tool_calls_of(self, message_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._buffers[message_id].tool_calls or [])

    def text_of(self, message_id: int) -> str:
        """Everything received so far (flushed or not)."""
        with self._lock:
            return "".join(self._buffers[message_id].text)

    def flush(self, message_id: int | None = None) -> None:
        """Write the pending deltas now (one message, or all)."""
        with self._flush_lock:
            now = self._clock()
            writes: list[tuple[int, str, str, list[dict[str, Any]] | None]] = []
            with self._lock:
                ids = [message_id] if message_id is not None else list(self._buffers)
                for mid in ids:
                    buf = self._buffers.get(mid)
                    if buf is None:
                        continue
                    if buf.dirty or buf.last_write + self.heartbeat_s <= now:  # as `_due_at`
                        buf.text = ["".join(buf.text)]
                        buf.thinking = ["".join(buf.thinking)]
                        writes.append((mid, buf.text[0], buf.thinking[0], buf.tool_calls))
                        buf.dirty = False
                        buf.last_write = now
            for mid, text, thinking, tool_calls in writes:
                try:
                    self.store.update_message(
                        mid, text=text, thinking=thinking, tool_calls=tool_calls
                    )
                    self.flush_count += 1
                except Exception:
                    # Keep the text in memory and try again next tick (e.g. database busy).
                    log.exception("flushing streaming message %s failed", mid)
                    with self._lock:
                        if mid in self._buffers:
                            self._mark_dirty(self._buffers[mid])

    def finish(
        self,
        message_id: int,
        *,
        status: MessageStatus = "done",
        stats: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Flush the rest and set the final status (and stats/error) in one transaction."""
        with self._flush_lock, self._lock:
            buf = self._buffers.pop(message_id, None)
        if buf is None:
            raise KeyError(f"message {message_id} is not streaming")
        self.store.update_message(
            message_id,
            text="".join(buf.text),
            thinking="".join(buf.thinking),
            tool_calls=buf.tool_calls,
            stats=stats,
            status=status,
            error=error,
        )

    @property
    def active(self) -> list[int]:
        with self._lock:
            return list(self._buffers)

    def close(self) -> None:
        """Flush everything and stop the background thread (streaming messages stay `streaming`)."""
        self._closed = True
        self._wake.set()
        self._thread.join(5)
        self.flush()

    def due_at(self, message_id: int) -> float | None:
        """When (on `clock`) the message must next be written; None if it is not streaming."""
        with self._lock:
            buf = self._buffers.get(message_id)
            return None if buf is None else self._due_at(buf)

    def _due_at(self, buf: _Buffer) -> float:
        due = buf.last_write + self.heartbeat_s
        if buf.dirty:
            due = min(due, buf.dirty_since + self.interval * FLUSH_AT)
        return due

    def run_due(self) -> float | None:
        """One tick: write every message whose time has come; returns the next due time (or None)."""
        now = self._clock()
        with self._lock:
            due = [mid for mid, buf in self._buffers.items() if self._due_at(buf) <= now]
        for mid in due:
            self.flush(mid)
        with self._lock:
            return min((self._due_at(buf) for buf in self._buffers.values()), default=None)

    def _run(self) -> None:
        while not self._closed:
            # Cleared before the tick: a delta arriving after it wakes the wait below.
            self._wake.clear()
            try:
                next_due = self.run_due()
            except Exception:
                log.exception("streaming writer tick failed")
                next_due = self._clock() + self.interval
            if self._closed:
                return
            timeout = None if next_due is None else max(0.0, next_due - self._clock())
            self._wake.wait(timeout)
