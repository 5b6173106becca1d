"""MCP server lists as other apps write them: Claude Desktop, VS Code, Cursor, and ours.

`parse_mcp_servers(data)` takes any of

- Claude Desktop / Cursor: `{"mcpServers": {"name": {"command": "npx", "args": [...], "env": {...}}}}`,
- VS Code (`mcp.json`, or `settings.json` under `"mcp"`): `{"servers": {"name": {"type": "stdio" | "http" | "sse", ...}}}`,
- a bare `{"name": {...}}` mapping, or our own list of entries with a `"name"`,

and returns `MCPServerConfig`s. Names written as keys are display names in those apps, so
they are made into valid server names (`my server` -> `my_server`). Fields we do not use
(`envFile`, `autoApprove`, `description`, ...) are left out.

`import_claude_desktop_servers()` reads the Claude Desktop configuration file of this
machine (`claude_desktop_config_path()`), for an "import servers" action. Imported servers
are not trusted: every call asks first.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from app.mcp_client import MCPConfigError, MCPServerConfig

# The entry fields we read (ours plus the other apps' spellings `from_dict` maps).
ENTRY_FIELDS = (
    "name", "command", "args", "url", "env", "cwd", "headers", "trusted", "timeout_s",
    "connect_timeout_s", "enabled", "type", "disabled",
)  # fmt: skip
_CONTAINERS = ("mcpServers", "servers", "mcp_servers")


def server_entries(data: Any) -> list[dict[str, Any]]:
    """The server entries (dicts with a `name`, only `ENTRY_FIELDS`) of any accepted shape."""
    if isinstance(data, Mapping) and isinstance(data.get("mcp"), Mapping):
        data = data["mcp"]  # VS Code settings.json
    if isinstance(data, Mapping):
        for key in _CONTAINERS:
            if key in data:
                data = data[key]
                break
    if isinstance(data, Mapping):
        entries = []
        for name, entry in data.items():
            if not isinstance(entry, Mapping):
                raise MCPConfigError(f"MCP server {name!r} must be an object, got {entry!r}")
            entries.append({**_known(entry), "name": server_name(str(name))})
        return entries
    if isinstance(data, list | tuple):
        for entry in data:
            if not isinstance(entry, Mapping):
                raise MCPConfigError(f"an MCP server must be an object, got {entry!r}")
        return [_known(entry) for entry in data]
    raise MCPConfigError(
        'MCP servers must be a list of servers or an object like {"mcpServers": {...}}.'
    )


def parse_mcp_servers(data: Any) -> list[MCPServerConfig]:
    """`MCPServerConfig`s from any accepted shape; `MCPConfigError` names a bad entry."""
    configs = [MCPServerConfig.from_dict(entry) for entry in server_entries(data)]
    names = [c.name for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MCPConfigError(f"MCP server names must differ; {', '.join(twice)} is used twice.")
    return configs


def server_name(label: str) -> str:
    """A display name made into a server name (letters, digits, _ and -)."""
    name = re.sub(r"[^\w-]+", "_", label.strip()).strip("_") or "server"
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def claude_desktop_config_path() -> Path:
    """Where Claude Desktop keeps its configuration on this system."""
    if sys.platform == "darwin":
        return (
            Path.home()
            / "Library"
            / "Application Support"
            / "Claude"
            / "claude_desktop_config.json"
        )
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
        return base / "Claude" / "claude_desktop_config.json"
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "Claude" / "claude_desktop_config.json"


def import_claude_desktop_servers(
    path: str | os.PathLike[str] | None = None, existing: Iterable[str] = ()
) -> list[MCPServerConfig]:
    """The MCP servers of a Claude Desktop configuration file, not yet in `existing` (names).

    Raises `MCPConfigError` when the file is missing or unreadable, naming it.
    """
    file = Path(path) if path is not None else claude_desktop_config_path()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MCPConfigError(f"There is no Claude Desktop configuration at {file}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MCPConfigError(f"Cannot read {file}: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("mcpServers", {}), Mapping):
        raise MCPConfigError(f"{file} has no mcpServers object.")
    taken = set(existing)
    return [
        c
        for c in parse_mcp_servers({"mcpServers": data.get("mcpServers", {})})
        if c.name not in taken
    ]


def _known(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k in ENTRY_FIELDS}
