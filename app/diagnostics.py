"""The app's log and Help ▸ Save Diagnostics: what to send along with a bug report.

`setup_logging(data_dir)` writes the log to `<data folder>/logs/gemma-desk.log`, rotated
(1 MB, five old files kept), and keeps the last warnings and errors in memory. The log
says what failed and where (the logger's module, the thread, the traceback) and never
holds what the user wrote or the model answered: messages are named by their numbers.

`save_diagnostics(session, path)` writes one zip: the logs, the versions of the app and
its libraries, the machine, the memory plan and model status, the settings with every
secret replaced by "(set)", and the last errors (from the log and the stored answers'
error messages, without their text). The open conversation goes in only when the user
ticks it (`conversation_id`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import logging.handlers
import platform
import sys
import threading
import time
import zipfile
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Any

LOG_DIRNAME = "logs"
LOG_FILENAME = "gemma-desk.log"
LOG_BYTES = 1_000_000
LOG_BACKUPS = 5
RECENT_ERRORS = 50
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
PACKAGES = ("gemma-desk", "mlx", "mlx-metal", "mlx-lm", "pyside6-essentials", "transformers",
            "tokenizers", "safetensors", "numpy", "sounddevice", "opencv-python-headless", "av",
            "pillow", "mcp", "openai", "uvicorn")  # fmt: skip
SECRET_NAMES = ("api_key", "token", "password", "secret", "authorization")


class RecentErrors(logging.Handler):
    """The last warnings and errors, in memory (for the diagnostics' error list)."""

    def __init__(self, capacity: int = RECENT_ERRORS) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        entry = {
            "time": record.created,
            "level": record.levelname,
            "where": f"{record.name} ({record.module}.{record.funcName}:{record.lineno})",
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        with self._records_lock:
            self.records.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._records_lock:
            return list(self.records)


@dataclasses.dataclass
class LogSetup:
    """The handlers `setup_logging` added; `close()` removes them again."""

    folder: Path
    file_handler: logging.Handler
    recent: RecentErrors
    console: logging.Handler | None = None

    def close(self) -> None:
        root = logging.getLogger()
        for handler in (self.file_handler, self.recent, self.console):
            if handler is None:
                continue
            root.removeHandler(handler)
            handler.close()
        global _current
        if _current is self:
            _current = None


_current: LogSetup | None = None


def setup_logging(data_dir: str | Path, *, level: int = logging.INFO) -> LogSetup:
    """Log to the data folder's rotating file and keep the last errors (once per process:
    a second call for another folder moves the log there)."""
    global _current
    if _current is not None:
        _current.close()
    folder = Path(data_dir) / LOG_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        folder / LOG_FILENAME, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    recent = RecentErrors()
    root = logging.getLogger()
    root.addHandler(file_handler)
    root.addHandler(recent)
    # Warnings still reach the terminal, as they did before the log had handlers.
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    _current = LogSetup(folder, file_handler, recent, console)
    logging.getLogger(__name__).info(
        "Gemma Desk %s started (Python %s, %s)", _version("gemma-desk"),
        platform.python_version(), platform.platform(),
    )  # fmt: skip
    return _current


def current_log() -> LogSetup | None:
    return _current


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, Any]:
    """The app, Python, the libraries and the machine."""
    import psutil

    return {
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "memory_bytes": psutil.virtual_memory().total,
        "cpus": psutil.cpu_count(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def redacted_settings(settings: Any) -> dict[str, Any]:
    """The settings as JSON-ready data with every secret replaced by "(set)" or ""."""
    data = dataclasses.asdict(settings)
    return {key: _redact(key, value) for key, value in data.items()}


def _redact(key: str, value: Any) -> Any:
    if any(name in key.lower() for name in SECRET_NAMES):
        if isinstance(value, str) and value.startswith("env:"):
            return value  # names an environment variable, holds no secret
        return "(set)" if value else ""
    if key in ("env", "headers") and isinstance(value, dict):
        return {k: "(set)" for k in value}
    if isinstance(value, dict):
        return {k: _redact(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(key, v) for v in value]
    return value


def stored_errors(storage: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The last answers that failed: when, which kind, the error (never the text)."""
    rows = storage.db.query(
        "SELECT id, conversation_id, error, stats, updated_at FROM messages"
        " WHERE status = 'error' ORDER BY updated_at DESC LIMIT ?",
        (limit,),
    )
    out = []
    for row in rows:
        stats = json.loads(row["stats"]) if row["stats"] else {}
        out.append(
            {
                "time": row["updated_at"],
                "conversation": row["conversation_id"],
                "message": row["id"],
                "kind": stats.get("error_kind", ""),
                "error": row["error"],
            }
        )
    return out


def save_diagnostics(session: Any, path: str | Path, conversation_id: int | None = None) -> Path:
    """Write the diagnostics zip (see the module docstring); returns its path."""
    path = Path(path)
    logs = current_log()
    log_folder = logs.folder if logs else Path(session.storage.paths.root) / LOG_DIRNAME
    rows, verdict = _memory_plan(session)
    status = dataclasses.asdict(session.model_status)
    errors = {
        "log": logs.recent.snapshot() if logs else [],
        "answers": stored_errors(session.storage),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", _readme(conversation_id is not None))
        archive.writestr("versions.json", _json(versions()))
        archive.writestr(
            "model.json", _json({"status": status, "memory_plan": rows, "verdict": verdict})
        )
        archive.writestr("settings.json", _json(redacted_settings(session.settings)))
        archive.writestr("errors.json", _json(errors))
        found = sorted(log_folder.glob(LOG_FILENAME + "*")) if log_folder.is_dir() else []
        for log_file in found:
            archive.write(log_file, f"logs/{log_file.name}")
        if not found:
            archive.writestr("logs/NONE.txt", f"No log file in {log_folder}.")
        if conversation_id is not None:
            from app.storage.export import to_json_data

            store = session.storage.conversations
            data = to_json_data(
                store.get_conversation(conversation_id), store.messages(conversation_id)
            )
            archive.writestr("conversation.json", _json(data))
    logging.getLogger(__name__).info("diagnostics saved to %s", path)
    return path


def _memory_plan(session: Any) -> tuple[list[tuple[str, str]], str]:
    try:
        return session.memory_plan()
    except Exception as exc:  # noqa: BLE001 - the diagnostics must be saved all the same
        return [], f"No memory plan: {type(exc).__name__}: {exc}"


def _readme(with_conversation: bool) -> str:
    return (
        f"Gemma Desk diagnostics, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n\n"
        "versions.json  the app, Python, the libraries and the machine\n"
        "model.json     the model's status and the memory plan\n"
        "settings.json  the settings; API keys and MCP headers/env values are replaced by (set)\n"
        "errors.json    the last warnings and errors, and the last failed answers (no text)\n"
        "logs/          the app's log (what failed and where; no message content)\n"
        + (
            "conversation.json  the open conversation, as you chose to include it\n"
            if with_conversation
            else ""
        )
    )


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)
