"""The server's bounded queue: one request generates at a time, at most `max_waiting` wait.

A request is first admitted (or refused at once with 429 when the queue is full), then
waits for its turn, and releases the turn when its generation has really ended on the
engine thread. Runs on the server's event loop; `release` is idempotent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.server.errors import APIError


@dataclass
class QueueStats:
    running: int
    waiting: int
    max_waiting: int
    served: int
    rejected: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class GenerationQueue:
    """Admission control for generations; see the module docstring."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._lock: asyncio.Lock | None = None
        self._admitted = 0
        self._running = 0
        self.served = 0
        self.rejected = 0

    @property
    def capacity(self) -> int:
        return 1 + self.max_waiting

    def stats(self) -> QueueStats:
        return QueueStats(
            running=self._running,
            waiting=self._admitted - self._running,
            max_waiting=self.max_waiting,
            served=self.served,
            rejected=self.rejected,
        )

    def admit(self) -> Ticket:
        """A ticket for one generation, or 429 when `1 + max_waiting` requests are already in."""
        if self._admitted >= self.capacity:
            self.rejected += 1
            raise APIError(
                429,
                f"The server is busy: one request is generating and {self.max_waiting} are waiting. "
                "Try again shortly.",
                code="queue_full",
                headers={"Retry-After": "1"},
            )
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._admitted += 1
        return Ticket(self)


class Ticket:
    """One admitted request's place in the queue."""

    def __init__(self, queue: GenerationQueue) -> None:
        self._queue = queue
        self._has_turn = False
        self._released = False

    async def turn(self) -> None:
        """Wait until this request may generate (cancellable while waiting)."""
        assert self._queue._lock is not None
        await self._queue._lock.acquire()
        self._has_turn = True
        self._queue._running += 1

    def release(self) -> None:
        """Give the place (and the turn, if held) back; safe to call more than once."""
        if self._released:
            return
        self._released = True
        self._queue._admitted -= 1
        if self._has_turn:
            self._queue._running -= 1
            self._queue.served += 1
            assert self._queue._lock is not None
            self._queue._lock.release()
