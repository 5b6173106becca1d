"""A thread-safe list of event callbacks: the one way the app's services tell their listeners."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

EventT = TypeVar("EventT")


class Subscribers(Generic[EventT]):
    """Callbacks for one kind of event; `emit` calls each (on the emitting thread) in the
    order they subscribed. A callback that raises is logged and skipped: a broken listener
    must not take down the service that emits."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[EventT], None]] = []

    def subscribe(self, callback: Callable[[EventT], None]) -> Callable[[], None]:
        """Add `callback`; returns the function that removes it (safe to call twice)."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def emit(self, event: EventT) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("%s subscriber %r failed on %r", self._owner, callback, event)
