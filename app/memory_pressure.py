"""The system's memory-pressure notifications, as "normal" / "warning" / "critical" calls.

On macOS the kernel tells processes when memory runs short (what Activity Monitor's memory
pressure graph shows); libdispatch delivers it through a `DISPATCH_SOURCE_TYPE_MEMORYPRESSURE`
source. `start_monitor(callback)` creates one through ctypes and calls `callback(level)`
on libdispatch's thread at each change. Where that source cannot be made it polls
`psutil.virtual_memory()` every few seconds instead (available memory under 10% of the
total: warning; under 5%: critical). Other systems get no monitor (None): the app there
relies on its memory plan and keep-alive alone.

Nothing here runs in the test suite; the session's reaction is tested by calling
`AppSession.memory_pressure(level)` directly.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Callback = Callable[[str], None]

# <dispatch/source.h>
DISPATCH_MEMORYPRESSURE_NORMAL = 0x01
DISPATCH_MEMORYPRESSURE_WARN = 0x02
DISPATCH_MEMORYPRESSURE_CRITICAL = 0x04
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"

POLL_INTERVAL_S = 5.0
WARNING_FRACTION = 0.10  # available / total under this: "warning"
CRITICAL_FRACTION = 0.05


class Monitor(Protocol):
    def stop(self) -> None: ...


def start_monitor(callback: Callback) -> Monitor | None:
    """Follow the system's memory pressure (see the module docstring); None where unsupported."""
    if sys.platform != "darwin":
        return None
    try:
        return DispatchMonitor(callback)
    except (OSError, AttributeError, ValueError) as exc:
        log.warning("no memory-pressure notifications (%s); polling free memory instead", exc)
        return PollingMonitor(callback)


def level_of(flags: int) -> str:
    """A dispatch source's memory-pressure flags as a level name."""
    if flags & DISPATCH_MEMORYPRESSURE_CRITICAL:
        return "critical"
    if flags & DISPATCH_MEMORYPRESSURE_WARN:
        return "warning"
    return "normal"


_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_KEEP: list[Any] = []  # handlers libdispatch may still call: never garbage-collected


class DispatchMonitor:
    """A libdispatch memory-pressure source on a global queue (macOS)."""

    def __init__(self, callback: Callback) -> None:
        lib = ctypes.CDLL(LIBSYSTEM)
        source_type = ctypes.addressof(
            ctypes.c_char.in_dll(lib, "_dispatch_source_type_memorypressure")
        )
        lib.dispatch_get_global_queue.restype = ctypes.c_void_p
        lib.dispatch_get_global_queue.argtypes = [ctypes.c_long, ctypes.c_ulong]
        lib.dispatch_source_create.restype = ctypes.c_void_p
        lib.dispatch_source_create.argtypes = [
            ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_void_p,
        ]  # fmt: skip
        lib.dispatch_source_get_data.restype = ctypes.c_ulong
        lib.dispatch_source_get_data.argtypes = [ctypes.c_void_p]
        lib.dispatch_source_set_event_handler_f.argtypes = [ctypes.c_void_p, _HANDLER]
        lib.dispatch_resume.argtypes = [ctypes.c_void_p]
        lib.dispatch_source_cancel.argtypes = [ctypes.c_void_p]
        mask = (
            DISPATCH_MEMORYPRESSURE_NORMAL
            | DISPATCH_MEMORYPRESSURE_WARN
            | DISPATCH_MEMORYPRESSURE_CRITICAL
        )
        queue = lib.dispatch_get_global_queue(0, 0)
        source = lib.dispatch_source_create(source_type, 0, mask, queue)
        if not source:
            raise OSError("dispatch_source_create returned NULL")

        def handle(_context: int | None) -> None:
            try:
                callback(level_of(int(lib.dispatch_source_get_data(source))))
            except Exception:  # noqa: BLE001 - never let an exception cross into C
                log.exception("memory-pressure callback failed")

        handler = _HANDLER(handle)
        _KEEP.append(handler)
        lib.dispatch_source_set_event_handler_f(source, handler)
        lib.dispatch_resume(source)
        self._lib, self._source = lib, source

    def stop(self) -> None:
        if self._source:
            self._lib.dispatch_source_cancel(self._source)
            self._source = None


class PollingMonitor:
    """Polls available memory (psutil) on a daemon thread; calls back when the level changes."""

    def __init__(
        self,
        callback: Callback,
        interval_s: float = POLL_INTERVAL_S,
        read: Callable[[], Any] | None = None,
    ) -> None:
        import psutil

        self._callback = callback
        self._interval = interval_s
        self._read = read or psutil.virtual_memory
        self._stop = threading.Event()
        self._level = "normal"
        self._thread = threading.Thread(target=self._run, name="memory-pressure", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            memory = self._read()
            fraction = memory.available / memory.total if memory.total else 1.0
            if fraction < CRITICAL_FRACTION:
                level = "critical"
            elif fraction < WARNING_FRACTION:
                level = "warning"
            else:
                level = "normal"
            if level != self._level:
                self._level = level
                try:
                    self._callback(level)
                except Exception:  # noqa: BLE001 - keep watching
                    log.exception("memory-pressure callback failed")

    def stop(self) -> None:
        self._stop.set()
