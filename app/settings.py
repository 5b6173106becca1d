"""The user's settings: typed fields with defaults, persisted in the database's `settings` table.

`Settings` is a frozen dataclass (one field per setting, each with its default);
`SettingsStore` loads it, validates changes and writes each changed field as one JSON row
in a single transaction. Unknown keys in the table (written by a newer app) are kept
untouched; a stored value that no longer validates falls back to the default and is
reported in `SettingsStore.problems` rather than crashing the app.

Sampling fields left at `None` mean "the checkpoint's own default" (its
`generation_config.json`), so nothing model-specific is hard-coded here.

The data folder cannot live inside the database it locates: `data_dir` is stored in the
small pointer file described in `app.paths` and read back from there.

Secrets (`server_api_key`, `remote_api_key`, and the `headers` and `env` values of the
MCP servers) go into the OS keychain where there is one (`app.keychain.SecretStore`): the
database row then holds only a reference, `{"keychain": true}` (for an MCP server, the
entry with `"keychain": true` in place of its headers and env). Plain-text secrets found
in the database are moved into the keychain when the settings are loaded. Without a
keychain they stay in the database, as written, inside the private data folder, and
`SettingsStore.secrets.location()` says so. `remote_api_key` may also be `env:NAME`: the
key is then read from the environment variable NAME when the app connects
(`Settings.remote_key()`).
`mcp_servers` holds each MCP server in the compact form `normalize_mcp_server` gives
(what `app.mcp_client.MCPServerConfig.from_dict` accepts, with `args` folded into
`command` and defaults left out). It may also be given as Claude Desktop, Cursor or
VS Code write it (`{"mcpServers": {...}}`, `{"servers": {...}}`; `app.mcp_config`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from app import paths
from app.engines.contract import LocalModel, RemoteModel
from app.keep_alive import DEFAULT_KEEP_ALIVE, KeepAliveError, parse_keep_alive
from app.keychain import SecretStore
from app.mcp_client import MCPConfigError, MCPServerConfig
from app.options import (
    DEFAULT_IMAGE_BUDGET,
    DEFAULT_MAX_TOKENS,
    IMAGE_BUDGETS,
    LIMITS,
    GenerationOptions,
    OptionError,
)
from app.storage.database import Database
from app.updates import is_allowed_url

Precision = Literal["auto", "bf16", "8bit", "4bit"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
BackendMode = Literal["local", "remote"]
REMOTE_FIELDS = ("backend", "remote_url", "remote_model", "remote_api_key")
SERVER_FIELDS = ("server_enabled", "server_host", "server_port", "server_api_key")
ENV_PREFIX = "env:"  # remote_api_key = "env:NAME": read the key from $NAME at connect time
SECRET_FIELDS = ("server_api_key", "remote_api_key")
MCP_SECRET_PARTS = ("headers", "env")  # every value of these is kept as a secret
IN_KEYCHAIN = {"keychain": True}  # what the database holds for a secret in the keychain


class SettingsError(ValueError):
    """A setting got a value it cannot take; the message names the setting and the rule."""


@dataclass(frozen=True)
class Settings:
    """Every persisted setting with its default."""

    # Model
    model_path: str = ""  # checkpoint folder; "" = none chosen yet
    precision: Precision = "auto"  # "auto": as stored in the checkpoint
    context_length: int = 8192  # tokens of KV cache to plan for
    kv_cache_bits: int | None = None  # None = full precision KV cache; 4 or 8 quantize it
    # Render with the checkpoint's own chat template even when it is an outdated Gemma 4 one
    use_checkpoint_template: bool = False
    # Speculative decoding with the model's drafter, when one is found and fits in memory
    speculative_decoding: bool = True
    # Unload the local model after this much idle time (app.keep_alive: "30m", "never", ...)
    keep_alive: str = DEFAULT_KEEP_ALIVE
    # Generation (None = the checkpoint's generation_config.json default)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = None
    system_prompt: str = ""
    thinking: bool = False
    vision_budget: int = DEFAULT_IMAGE_BUDGET  # soft tokens per image
    # Devices (None = the system default device)
    mic_device: str | None = None
    camera_device: str | None = None
    # Local OpenAI-compatible server
    server_enabled: bool = False
    server_host: str = "127.0.0.1"
    server_port: int = 8765
    server_api_key: str = ""
    # Backend: the local model, or a remote OpenAI-compatible server (vLLM, another Gemma Desk)
    backend: BackendMode = "local"
    remote_url: str = ""  # base URL, e.g. http://gpu-box:8000/v1
    remote_model: str = ""  # "" = the first model the server lists
    remote_api_key: str = ""  # the key itself, or "env:NAME" (see the module docstring)
    # Tools from MCP servers (see app.mcp_client)
    mcp_servers: tuple[dict[str, Any], ...] = ()
    mcp_allowed_tools: tuple[str, ...] = ()  # "server/tool" the user chose to always allow
    # Interface
    theme: Literal["system", "light", "dark"] = "system"
    send_with_enter: bool = True
    dictation_mode: bool = False  # push-to-talk transcribes into the composer
    # Updates: a release feed checked only when asked (see app.updates); "" = off
    update_feed_url: str = ""

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with the given fields changed."""
        for name, value in changes.items():
            validate(name, value)
        changes = {name: _coerce(name, value) for name, value in changes.items()}
        new = dataclasses.replace(self, **changes)
        if new.backend == "remote" and not new.remote_url:
            raise SettingsError(
                "Setting 'remote_url' must be set when setting 'backend' is 'remote'."
            )
        return new

    def local_model(self, path: str | None = None) -> LocalModel:
        """The local checkpoint (`path`, else the chosen one) as the settings load it."""
        bits = {"8bit": 8, "4bit": 4}.get(self.precision)
        return LocalModel(
            path or self.model_path,
            bits,
            self.context_length,
            self.kv_cache_bits,
            use_checkpoint_template=self.use_checkpoint_template,
            speculative=self.speculative_decoding,
        )

    def remote_spec(self) -> RemoteModel:
        """The remote server the settings name (`SettingsError` when its key is missing)."""
        if not self.remote_url:
            raise SettingsError("Set the remote server's URL in Settings ▸ Backend.")
        return RemoteModel(self.remote_url, self.remote_model, self.remote_key())

    def generation_options(self) -> GenerationOptions:
        """The generation settings as the options every engine takes."""
        return GenerationOptions(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            seed=self.seed,
            enable_thinking=self.thinking,
            image_budget=self.vision_budget,
        )

    def remote_key(self) -> str:
        """The remote server's API key, read from the environment for an `env:NAME` value."""
        key = self.remote_api_key
        if not key.startswith(ENV_PREFIX):
            return key
        name = key[len(ENV_PREFIX) :]
        if name not in os.environ:
            raise SettingsError(
                f"Setting 'remote_api_key' names the environment variable {name}, which is not set."
            )
        return os.environ[name]

    def mcp_configs(self) -> list[MCPServerConfig]:
        """The MCP servers as `MCPServerConfig`s (disabled ones included; the manager skips them)."""
        return [MCPServerConfig.from_dict(entry) for entry in self.mcp_servers]


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES = get_type_hints(Settings)
DEFAULTS = Settings()

# Range rules beyond the type: name -> (check, explanation).
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "context_length": (lambda v: 256 <= v <= 1_048_576, "between 256 and 1048576 tokens"),
    "kv_cache_bits": (lambda v: v is None or v in (4, 8), "4, 8 or empty (full precision)"),
    "keep_alive": (
        lambda v: _is_keep_alive(v),
        "a duration such as 30m, 2h, 90s or 600 (seconds), or never",
    ),
    # The generation fields follow the options' one set of limits.
    **{
        name: (lambda v, name=name: v is None or _within(name, v), limit.describe())
        for name, limit in LIMITS.items()
    },
    "vision_budget": (
        lambda v: v in IMAGE_BUDGETS,
        f"one of {', '.join(map(str, IMAGE_BUDGETS))}",
    ),
    "server_port": (lambda v: 1 <= v <= 65535, "a port number from 1 to 65535"),
    "server_host": (lambda v: bool(v.strip()), "a host name or address"),
    "remote_url": (
        lambda v: v == "" or _is_http_url(v),
        "empty or an http:// or https:// URL with a host, e.g. http://gpu-box:8000/v1",
    ),
    "update_feed_url": (
        lambda v: v == "" or is_allowed_url(v),
        "empty (no update checks) or the https:// address of a release feed",
    ),
    "remote_api_key": (
        lambda v: not v.startswith(ENV_PREFIX) or _ENV_NAME.fullmatch(v[len(ENV_PREFIX) :]),
        "the key itself or env:NAME with NAME an environment variable name",
    ),
    "mcp_allowed_tools": (
        lambda v: all(re.fullmatch(r"[\w-]+/\S+", key) for key in v),
        'a list of "server/tool" names',
    ),
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# What an `mcp_servers` entry may contain, and the type each field takes.
_MCP_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a text"),
    "command": ((str, list, tuple), "a program, or a list of the program and its arguments"),
    "args": ((list, tuple), "a list of arguments"),
    "url": (str, "an http(s):// URL"),
    "env": (dict, "an object of text values"),
    "cwd": ((str, type(None)), "a folder or null"),
    "headers": (dict, "an object of text values"),
    "trusted": (bool, "true or false"),
    "timeout_s": ((int, float), "a number of seconds"),
    "connect_timeout_s": ((int, float), "a number of seconds"),
    "enabled": (bool, "true or false"),
    "type": (str, "stdio, http or sse"),
    "disabled": (bool, "true or false"),
}


def _is_keep_alive(value: str) -> bool:
    try:
        parse_keep_alive(value)
    except KeepAliveError:
        return False
    return True


def _within(name: str, value: Any) -> bool:
    try:
        LIMITS[name].check(name, value)
    except OptionError:
        return False
    return True


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def normalize_mcp_server(entry: Any) -> dict[str, Any]:
    """One `mcp_servers` entry checked and in its stored form; `SettingsError` names the problem.

    `command` may be a string or a list, and `args` is appended to it; fields left at
    their defaults are dropped, except `name`, `command` or `url`, and `trusted`.
    """
    if not isinstance(entry, dict):
        raise SettingsError(f"must be an object with a name and a command or url; got {entry!r}")
    label = f"{entry.get('name')!r}" if isinstance(entry.get("name"), str) else "without a name"
    for key, value in entry.items():
        if key not in _MCP_FIELDS:
            known = ", ".join(_MCP_FIELDS)
            raise SettingsError(f"server {label} has an unknown field {key!r} (known: {known})")
        kinds, explanation = _MCP_FIELDS[key]
        if not isinstance(value, kinds) or isinstance(value, bool) and kinds is not bool:
            raise SettingsError(f"server {label}: {key!r} must be {explanation}; got {value!r}")
        if key in ("env", "headers") and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise SettingsError(f"server {label}: {key!r} must be {explanation}")
    command = entry.get("command") or []
    command = [command] if isinstance(command, str) else list(command)
    command += list(entry.get("args") or [])
    if not all(isinstance(part, str) and part for part in command):
        raise SettingsError(f"server {label}: the command and its arguments must be texts")
    data = {k: v for k, v in entry.items() if k != "args"}
    data["command"] = command
    try:
        config = MCPServerConfig.from_dict(data)
    except MCPConfigError as exc:
        raise SettingsError(str(exc)) from exc
    full = config.to_dict()
    defaults = MCPServerConfig(config.name).to_dict()
    keep = {"name", "command" if config.command else "url", "trusted"}
    return {k: v for k, v in full.items() if k in keep or v != defaults[k]}


def _normalize_mcp_servers(value: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(value, dict):  # as Claude Desktop / Cursor / VS Code write it
        from app.mcp_config import server_entries

        try:
            value = server_entries(value)
        except MCPConfigError as exc:
            raise SettingsError(f"Setting 'mcp_servers': {exc}") from None
    if not isinstance(value, (list, tuple)):
        raise SettingsError(f"Setting 'mcp_servers' must be a list of servers; got {value!r}.")
    servers: list[dict[str, Any]] = []
    for index, entry in enumerate(value, 1):
        try:
            servers.append(normalize_mcp_server(entry))
        except SettingsError as exc:
            raise SettingsError(f"Setting 'mcp_servers', entry {index}: {exc}") from None
    names = [server["name"] for server in servers]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SettingsError(
            f"Setting 'mcp_servers': each server needs its own name; {', '.join(twice)} is used twice."
        )
    return tuple(servers)


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Literal:
        return value in get_args(annotation)
    if origin is tuple:  # tuple[X, ...]
        return isinstance(value, (list, tuple)) and all(
            _type_ok(v, get_args(annotation)[0]) for v in value
        )
    if origin is not None and type(None) in get_args(annotation):  # X | None
        return value is None or any(
            _type_ok(value, a) for a in get_args(annotation) if a is not type(None)
        )
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def validate(name: str, value: Any) -> None:
    """Raise `SettingsError` unless `value` is a valid value for setting `name`."""
    if name not in _FIELDS:
        raise SettingsError(f"There is no setting called {name!r}.")
    if name == "mcp_servers":  # a list of servers, each checked with its own message
        _normalize_mcp_servers(value)
        return
    annotation = _TYPES[name]
    if not _type_ok(value, annotation):
        if get_origin(annotation) is Literal:
            choices = ", ".join(repr(a) for a in get_args(annotation))
            raise SettingsError(f"Setting {name!r} must be one of {choices}; got {value!r}.")
        raise SettingsError(f"Setting {name!r} must be of type {annotation}; got {value!r}.")
    rule = _RULES.get(name)
    if rule and not rule[0](value):
        shown = "(hidden)" if name.endswith("api_key") else repr(value)
        raise SettingsError(f"Setting {name!r} must be {rule[1]}; got {shown}.")


def _coerce(name: str, value: Any) -> Any:
    if name == "mcp_servers":  # a JSON list comes back: store the normalized, immutable form
        try:
            return _normalize_mcp_servers(value)
        except SettingsError:
            return value  # `validate` reports it
    # JSON has one number type: 3.0 may come back for an int field and 1 for a float one.
    annotation = _TYPES[name]
    origin = get_origin(annotation)
    if origin is tuple and isinstance(value, list):  # JSON arrays come back as lists
        return tuple(value)
    accepts = (
        get_args(annotation) if origin is not None and origin is not Literal else (annotation,)
    )
    if isinstance(value, float) and int in accepts and float not in accepts and value.is_integer():
        return int(value)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and float in accepts
        and int not in accepts
    ):
        return float(value)
    return value


def _mcp_secret_name(entry: dict[str, Any]) -> str:
    return f"mcp_servers/{entry.get('name', '')}"


class SettingsStore:
    """Load and save `Settings` in the database; thread-safe; tells subscribers about changes.

    Secrets go through `secrets` (the OS keychain when available; see the module docstring).
    """

    def __init__(self, db: Database, *, secrets: SecretStore | None = None) -> None:
        self.db = db
        self.secrets = secrets or SecretStore(scope=str(Path(db.path).resolve().parent))
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[Settings, set[str]], None]] = []
        self.problems: list[str] = []  # stored values that were invalid and fell back to defaults
        self._plain_secrets: set[str] = set()  # secret settings found in the database
        self._settings = self._load()
        if self._plain_secrets and self.secrets.available:
            with self._lock, self.db.transaction() as conn:
                self._write(conn, self._settings, self._plain_secrets)
            self.db.checkpoint()  # no copy of the old rows left in the write-ahead log

    def _load(self) -> Settings:
        values: dict[str, Any] = {}
        for row in self.db.query("SELECT key, value FROM settings"):
            name = row["key"]
            if name not in _FIELDS or name == "data_dir":
                continue  # a newer app's setting: leave it alone
            try:
                value = _coerce(name, self._from_db(name, json.loads(row["value"])))
                validate(name, value)
            except (ValueError, SettingsError) as exc:
                shown = "''" if name in SECRET_FIELDS else repr(getattr(DEFAULTS, name))
                self.problems.append(f"{exc} The default ({shown}) is used instead.")
                continue
            values[name] = value
        return dataclasses.replace(DEFAULTS, **values)

    # -- secrets --------------------------------------------------------------------------

    def _from_db(self, name: str, stored: Any) -> Any:
        """A stored value with its secrets read back from the keychain."""
        if name in SECRET_FIELDS:
            if stored == IN_KEYCHAIN:
                return self._secret(name, name)
            if isinstance(stored, str) and stored and not stored.startswith(ENV_PREFIX):
                self._plain_secrets.add(name)
            return stored
        if name == "mcp_servers" and isinstance(stored, list):
            out = []
            for entry in stored:
                if isinstance(entry, dict) and entry.get("keychain") is True:
                    entry = {k: v for k, v in entry.items() if k != "keychain"}
                    try:
                        parts = json.loads(self._secret(name, _mcp_secret_name(entry)))
                    except (SettingsError, ValueError) as exc:
                        # The server stays configured, without its credentials.
                        self.problems.append(f"MCP server {entry.get('name')!r}: {exc}")
                        parts = {}
                    entry.update({k: v for k, v in parts.items() if k in MCP_SECRET_PARTS})
                elif isinstance(entry, dict) and any(entry.get(k) for k in MCP_SECRET_PARTS):
                    self._plain_secrets.add(name)
                out.append(entry)
            return out
        return stored

    def _secret(self, setting: str, name: str) -> str:
        value = self.secrets.get(name)
        if value is None:
            raise SettingsError(
                f"Setting {setting!r} is kept in the keychain, which has no entry for it "
                f"(or cannot be read here: {self.secrets.location()}); enter it again."
            )
        return value

    def _to_db(self, name: str, value: Any) -> Any:
        """The JSON value to store: secrets replaced by references once in the keychain."""
        if not self.secrets.available:
            return value
        if name in SECRET_FIELDS:
            if value.startswith(ENV_PREFIX):
                self.secrets.delete(name)
                return value
            if not value:
                self.secrets.delete(name)
                return value
            return IN_KEYCHAIN if self.secrets.set(name, value) else value
        if name == "mcp_servers":
            out = []
            for entry in value:
                parts = {k: entry[k] for k in MCP_SECRET_PARTS if entry.get(k)}
                secret = _mcp_secret_name(entry)
                if parts and self.secrets.set(secret, json.dumps(parts)):
                    entry = {k: v for k, v in entry.items() if k not in MCP_SECRET_PARTS}
                    entry["keychain"] = True
                elif not parts:
                    self.secrets.delete(secret)
                out.append(entry)
            return out
        return value

    def _write(self, conn: Any, settings: Settings, names: set[str]) -> None:
        for name in names:
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (name, json.dumps(self._to_db(name, getattr(settings, name)))),
            )

    @property
    def settings(self) -> Settings:
        """The current settings (an immutable snapshot)."""
        with self._lock:
            return self._settings

    def get(self, name: str) -> Any:
        return getattr(self.settings, name)

    def update(self, **changes: Any) -> Settings:
        """Validate and persist the given fields in one transaction; returns the new settings."""
        with self._lock:
            changes = {n: _coerce(n, v) if n in _FIELDS else v for n, v in changes.items()}
            new = self._settings.replace(**changes)
            changed = {n for n in changes if getattr(new, n) != getattr(self._settings, n)}
            if not changed:
                return new
            with self.db.transaction() as conn:
                self._write(conn, new, changed)
            if "mcp_servers" in changed and self.secrets.available:
                kept = {_mcp_secret_name(e) for e in new.mcp_servers}
                for entry in self._settings.mcp_servers:
                    if _mcp_secret_name(entry) not in kept:
                        self.secrets.delete(_mcp_secret_name(entry))
            self._settings = new
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(new, changed)
        return new

    def reset(self, *names: str) -> Settings:
        """Put the named settings (all when none are named) back to their defaults."""
        names = names or tuple(_FIELDS)
        return self.update(**{n: getattr(DEFAULTS, n) for n in names})

    def subscribe(self, callback: Callable[[Settings, set[str]], None]) -> Callable[[], None]:
        """Call `callback(settings, changed_names)` after each update; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    # The data folder lives outside the database (see app.paths).
    @staticmethod
    def data_dir() -> str:
        """The data folder in use unless overridden at start (flag or environment variable)."""
        return str(paths.resolve_data_dir())

    @staticmethod
    def set_data_dir(path: str | None) -> None:
        """Choose the data folder used from the next start (None: back to the default)."""
        paths.set_preferred_data_dir(path)
