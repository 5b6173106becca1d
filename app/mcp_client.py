"""MCP client: the user's MCP servers (stdio commands, streamable HTTP or SSE URLs) as chat tools.

`MCPManager` connects to each configured server with the official `mcp` SDK on its own
asyncio thread, lists the server's tools and offers them as `app.tools.registry.Tool`s (their
JSON schemas as the server gave them) to join the engine's `ToolRegistry`. A call runs
synchronously from the engine's function-calling loop:

- unless the server is trusted or the user chose "always allow this tool" for it,
  `approve(MCPCall)` is asked first (from the calling thread; it may block while the user
  decides); no callback, or a "no", refuses the call. The answer is a bool or an
  `Approval`: `ALWAYS` runs the call and every later call of that tool without asking
  (`MCPManager.always_allowed`, "server/tool" keys, reported to `on_always_allow` so the
  app can remember it);
- the call has a time limit (`MCPServerConfig.timeout_s`); a server that hangs or exits
  mid-call turns into a tool error the model reads, the server is marked failed and
  reported through `on_status`, and the chat goes on;
- results become JSON: the server's structured content when it has some, else its text.

Tool names are the server's own; one that is already taken gets the server name in front
(`server_tool`).

A server entry may be written as other apps write it (`app.mcp_config` reads whole
Claude Desktop / VS Code / Cursor files): `args` beside `command`, a `"type"` of `stdio`,
`http` / `streamable-http` or `sse` (a URL ending in `/sse` means SSE when no type is
given), `"disabled": true`. A stdio command that is not on this process's PATH (an app
started from the Finder has a minimal one) is looked up through the user's login shell,
whose PATH the server process then gets too (`app.shell_env`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.tools.approval import Approval
from app.tools.registry import MAX_RESULT_CHARS, Tool, ToolError, ToolRegistry

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z_][\w-]*")
TRANSPORTS = ("stdio", "http", "sse")
# "type" values other apps write, to ours.
_TRANSPORT_NAMES = {
    "stdio": "stdio", "local": "stdio", "http": "http", "streamable-http": "http",
    "streamable_http": "http", "streamablehttp": "http", "sse": "sse",
}  # fmt: skip


class MCPConfigError(ValueError):
    """An MCP server entry the user wrote is incomplete or invalid."""


@dataclass(frozen=True)
class MCPServerConfig:
    """One MCP server as the user configured it (settings store this as `to_dict()`)."""

    name: str
    command: tuple[str, ...] = ()  # stdio: the program and its arguments
    url: str = ""  # streamable HTTP: the endpoint, e.g. http://127.0.0.1:8000/mcp
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # HTTP only, e.g. Authorization
    trusted: bool = False  # calls run without asking the user
    timeout_s: float = 30.0  # per call
    connect_timeout_s: float = 30.0
    enabled: bool = True
    kind: str = ""  # "stdio", "http" (streamable HTTP) or "sse"; "" = from command / url

    def validate(self) -> MCPServerConfig:
        if not self.name or not _NAME.fullmatch(self.name):
            raise MCPConfigError(f"MCP server name {self.name!r}: use letters, digits, _ or -.")
        if bool(self.command) == bool(self.url):
            raise MCPConfigError(f"MCP server {self.name!r}: give either a command or a URL.")
        if self.kind and self.kind not in TRANSPORTS:
            raise MCPConfigError(
                f"MCP server {self.name!r}: type {self.kind!r} is not one of {', '.join(TRANSPORTS)}."
            )
        if self.kind and (self.kind == "stdio") != bool(self.command):
            needs = "a command" if self.kind == "stdio" else "a URL"
            raise MCPConfigError(f"MCP server {self.name!r}: type {self.kind!r} needs {needs}.")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise MCPConfigError(f"MCP server {self.name!r}: the URL must start with http(s)://.")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise MCPConfigError(f"MCP server {self.name!r}: time limits must be positive.")
        return self

    @property
    def transport(self) -> str:
        """`stdio`, `http` (streamable HTTP) or `sse`."""
        if self.kind:
            return self.kind
        if self.command:
            return "stdio"
        return "sse" if urlsplit(self.url).path.rstrip("/").endswith("/sse") else "http"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": list(self.command),
            "url": self.url,
            "env": dict(self.env),
            "cwd": self.cwd,
            "headers": dict(self.headers),
            "trusted": self.trusted,
            "timeout_s": self.timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
            "enabled": self.enabled,
            "type": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MCPServerConfig:
        """An entry in our form or as other apps write one (`args`, `type`, `disabled`)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        command = data.get("command") or ()
        command = [command] if isinstance(command, str) else list(command)
        command += list(data.get("args") or ())
        known["command"] = tuple(str(part) for part in command)
        kind = data.get("type", data.get("kind"))
        if kind:
            if str(kind).lower() not in _TRANSPORT_NAMES:
                raise MCPConfigError(
                    f"MCP server {data.get('name')!r}: unknown type {kind!r} "
                    f"(use {', '.join(TRANSPORTS)})."
                )
            known["kind"] = _TRANSPORT_NAMES[str(kind).lower()]
        if data.get("disabled") is True:
            known["enabled"] = False
        return cls(**known).validate()


class MCPStatus(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class MCPCall:
    """A tool call waiting for the user's approval."""

    server: str
    tool: str  # the server's own tool name
    arguments: dict[str, Any]
    registry_name: str  # the name the model used

    @property
    def key(self) -> str:
        """ "server/tool": how an always-allowed tool is remembered."""
        return f"{self.server}/{self.tool}"


@dataclass
class MCPToolInfo:
    server: str
    name: str  # the server's own name
    registry_name: str
    description: str
    input_schema: dict[str, Any]


ApproveCallback = Callable[[MCPCall], bool | Approval]
StatusCallback = Callable[[str, MCPStatus, str], None]  # (server name, status, message)


class _Connection:
    """One server: its config, state, tools and the asyncio task holding the session."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.status = MCPStatus.CONNECTING
        self.message = ""
        self.tools: list[MCPToolInfo] = []
        self.client: Any = None
        self.ready = threading.Event()  # set once connected or failed
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None


class MCPManager:
    """Connections to the user's MCP servers; see the module docstring."""

    def __init__(
        self,
        *,
        approve: ApproveCallback | None = None,
        on_status: StatusCallback | None = None,
        always_allowed: Iterable[str] = (),
        on_always_allow: Callable[[str], None] | None = None,
    ) -> None:
        self.approve = approve
        self.on_status = on_status
        self.always_allowed: set[str] = set(always_allowed)  # "server/tool" run without asking
        self.on_always_allow = on_always_allow
        self._connections: dict[str, _Connection] = {}
        self._lock = threading.RLock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mcp-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    # -- servers --------------------------------------------------------------------------------

    def add_server(self, config: MCPServerConfig, *, wait: bool = True) -> MCPStatus:
        """Connect to a server and list its tools; with `wait`, block until ready or failed."""
        config.validate()
        with self._lock:
            if self._closed:
                raise RuntimeError("The MCP manager is closed.")
            if config.name in self._connections:
                raise MCPConfigError(f"An MCP server named {config.name!r} is already added.")
            connection = _Connection(config)
            self._connections[config.name] = connection
        self._report(connection, MCPStatus.CONNECTING, "")
        asyncio.run_coroutine_threadsafe(self._start(connection), self._loop)
        if wait:
            connection.ready.wait(config.connect_timeout_s + 5)
        return connection.status

    def start(self, configs: Iterable[MCPServerConfig]) -> dict[str, MCPStatus]:
        """Connect to every enabled server at once; returns each one's status."""
        enabled = [c for c in configs if c.enabled]
        for config in enabled:
            self.add_server(config, wait=False)
        for config in enabled:
            connection = self._connections[config.name]
            connection.ready.wait(config.connect_timeout_s + 5)
        return {c.name: self._connections[c.name].status for c in enabled}

    def remove_server(self, name: str, timeout: float = 10.0) -> None:
        """Disconnect a server (its process ends) and forget it."""
        with self._lock:
            connection = self._connections.pop(name, None)
        if connection is not None:
            self._stop_connection(connection, timeout)
            self._report(connection, MCPStatus.STOPPED, "removed")

    def status(self) -> dict[str, tuple[MCPStatus, str]]:
        """Each server's status and its last message (the error, for a failed one)."""
        with self._lock:
            return {name: (c.status, c.message) for name, c in self._connections.items()}

    def tool_infos(self) -> list[MCPToolInfo]:
        with self._lock:
            return [
                t
                for c in self._connections.values()
                if c.status is MCPStatus.READY
                for t in c.tools
            ]

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect every server and stop the client thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
        for connection in connections:
            self._stop_connection(connection, timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> MCPManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tools ----------------------------------------------------------------------------------

    def tools(self, taken: Iterable[str] = ()) -> list[Tool]:
        """Every ready server's tools as registry `Tool`s, renamed where `taken` has the name."""
        used = set(taken)
        out: list[Tool] = []
        for info in self.tool_infos():
            name = info.name if _NAME.fullmatch(info.name) else _sanitize(info.name)
            if name in used:
                name = _sanitize(f"{info.server}_{info.name}")
            info.registry_name = name
            used.add(name)
            out.append(
                Tool(
                    name=name,
                    description=info.description,
                    parameters=info.input_schema,
                    function=self._tool_function(info),
                    requires_consent=False,  # approval is asked here, per tool (see `approve`)
                )
            )
        return out

    def register_into(self, registry: ToolRegistry) -> list[str]:
        """Add every ready server's tools to `registry`; returns the names they got."""
        tools = self.tools(taken=registry.tools)
        for tool in tools:
            registry.register(tool)
        return [t.name for t in tools]

    def call_tool(self, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Call a server's tool now (no approval asked); a failure raises `ToolError`."""
        with self._lock:
            connection = self._connections.get(server)
        if connection is None:
            raise ToolError(f"the MCP server {server!r} is not configured")
        if connection.status is not MCPStatus.READY or connection.client is None:
            raise ToolError(
                f"the MCP server {server!r} is not available ({connection.status}: {connection.message})"
            )
        timeout = connection.config.timeout_s
        future = asyncio.run_coroutine_threadsafe(
            connection.client.call_tool(tool, arguments, read_timeout_seconds=timeout), self._loop
        )
        try:
            result = future.result(timeout + 5)
        except (FutureTimeout, TimeoutError) as exc:
            future.cancel()
            message = f"the MCP server {server!r} did not answer {tool} within {timeout:g} s"
            self._fail(connection, message)
            raise ToolError(message) from exc
        except Exception as exc:
            text = str(exc) or type(exc).__name__
            if "timed out" in text:
                message = f"the MCP server {server!r} did not answer {tool} within {timeout:g} s"
            else:
                message = f"the MCP server {server!r} failed during {tool}: {text}"
            # Any transport-level failure means the session is unusable: report it.
            self._fail(connection, message)
            raise ToolError(message) from exc
        return _result_value(result, server, tool)

    def _tool_function(self, info: MCPToolInfo) -> Callable[..., Any]:
        def call(**arguments: Any) -> Any:
            with self._lock:
                connection = self._connections.get(info.server)
            request = MCPCall(info.server, info.name, dict(arguments), info.registry_name)
            trusted = connection is not None and connection.config.trusted
            if not trusted and request.key not in self.always_allowed:
                self._ask(request)
            return self.call_tool(info.server, info.name, arguments)

        call.__name__ = info.registry_name
        call.__doc__ = info.description
        return call

    def _ask(self, request: MCPCall) -> None:
        """Ask `approve`; raise `ToolError` unless the user allowed the call."""
        if self.approve is None:
            raise ToolError(f"{request.registry_name} needs the user's approval and none was asked")
        answer = self.approve(request)
        if answer is Approval.ALWAYS:
            self.always_allowed.add(request.key)
            if self.on_always_allow is not None:
                try:
                    self.on_always_allow(request.key)
                except Exception:
                    log.exception("remembering an always-allowed MCP tool failed")
        elif answer is not True and answer is not Approval.ONCE:
            raise ToolError(f"the user declined to run {request.registry_name}")

    # -- the asyncio side -------------------------------------------------------------------------

    async def _start(self, connection: _Connection) -> None:
        connection.stop = asyncio.Event()
        connection.task = asyncio.current_task()
        try:
            await self._serve(connection)
        except BaseException as exc:  # noqa: BLE001 - reported, never raised into the loop
            if connection.status is not MCPStatus.FAILED and not connection.stop.is_set():
                self._fail(connection, _describe(exc))
        finally:
            connection.client = None
            connection.ready.set()
            if connection.status is MCPStatus.READY:
                self._report(connection, MCPStatus.STOPPED, "disconnected")

    async def _serve(self, connection: _Connection) -> None:
        from mcp import Client

        config = connection.config
        client = Client(_transport(config), read_timeout_seconds=config.timeout_s)
        try:
            async with asyncio.timeout(config.connect_timeout_s):
                await client.__aenter__()
                tools = await _list_tools(client)
        except TimeoutError:
            with contextlib.suppress(BaseException):
                await client.__aexit__(None, None, None)
            raise TimeoutError(f"no answer within {config.connect_timeout_s:g} s") from None
        try:
            connection.tools = [
                MCPToolInfo(
                    server=config.name,
                    name=t.name,
                    registry_name=t.name,
                    description=t.description or t.title or t.name,
                    input_schema=dict(t.input_schema or {"type": "object", "properties": {}}),
                )
                for t in tools
            ]
            connection.client = client
            self._report(connection, MCPStatus.READY, f"{len(connection.tools)} tools")
            connection.ready.set()
            assert connection.stop is not None
            await connection.stop.wait()
        finally:
            with contextlib.suppress(BaseException):
                await client.__aexit__(None, None, None)

    def _stop_connection(self, connection: _Connection, timeout: float) -> None:
        def stop() -> None:
            if connection.stop is not None:
                connection.stop.set()

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(stop)
        task = connection.task
        if task is not None:
            done = threading.Event()
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(
                    lambda: task.add_done_callback(lambda _: done.set())
                )
                if not done.wait(timeout):
                    self._loop.call_soon_threadsafe(task.cancel)
        connection.status = MCPStatus.STOPPED

    def _fail(self, connection: _Connection, message: str) -> None:
        connection.client = None
        self._report(connection, MCPStatus.FAILED, message)
        log.warning("MCP server %s: %s", connection.config.name, message)
        # End the session task (a crashed process is reaped; a hung one is terminated).
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(
                lambda: connection.stop is not None and connection.stop.set()
            )

    def _report(self, connection: _Connection, status: MCPStatus, message: str) -> None:
        connection.status = status
        connection.message = message
        if self.on_status is not None:
            try:
                self.on_status(connection.config.name, status, message)
            except Exception:
                log.exception("MCP status callback failed")


async def _list_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # a paginator that never ends cannot hang the connection
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _transport(config: MCPServerConfig) -> Any:
    if config.command:
        from mcp import StdioServerParameters

        command, env = _stdio_command(config)
        return StdioServerParameters(
            command=command, args=list(config.command[1:]), env=env or None, cwd=config.cwd
        )
    if config.transport == "sse":
        from mcp.client.sse import sse_client

        # The session stays open between calls (each call has its own time limit), so
        # the stream is not given up while it is quiet.
        return sse_client(
            config.url,
            headers=dict(config.headers) or None,
            timeout=config.connect_timeout_s,
            sse_read_timeout=24 * 3600,
        )
    if config.headers:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(
            config.url,
            http_client=httpx2.AsyncClient(headers=config.headers, timeout=config.timeout_s),
        )
    return config.url


def _stdio_command(config: MCPServerConfig) -> tuple[str, dict[str, str]]:
    """The program to start and its extra environment; a program that is not on this
    process's PATH is found through the user's login shell, and gets that PATH too."""
    import shutil

    from app.shell_env import find_program, merged_path

    program, env = config.command[0], dict(config.env)
    if shutil.which(program, path=env.get("PATH")) is None:
        found = find_program(program)
        if found is not None:
            program = found
            env.setdefault("PATH", merged_path())
    return program, env


def _result_value(result: Any, server: str, tool: str) -> Any:
    texts = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            texts.append(item.text)
        elif kind in ("image", "audio"):
            texts.append(f"[{kind} {getattr(item, 'mime_type', '')}]")
        elif kind == "resource_link":
            texts.append(f"[resource {getattr(item, 'uri', '')}]")
        else:
            texts.append(f"[{kind}]")
    if result.is_error:
        raise ToolError(f"{server}/{tool} reported an error: {' '.join(texts) or 'no details'}")
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        # MCP wraps a bare return value as {"result": value}.
        if isinstance(structured, dict) and list(structured) == ["result"]:
            return structured["result"]
        return structured
    if len(texts) == 1:
        if len(texts[0]) > MAX_RESULT_CHARS:  # cut by the registry: no need to parse it all
            return texts[0]
        try:
            return json.loads(texts[0])
        except ValueError:
            return texts[0]
    return texts


def _sanitize(name: str) -> str:
    cleaned = re.sub(r"[^\w-]", "_", name)
    return cleaned if _NAME.fullmatch(cleaned) else f"_{cleaned}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, FileNotFoundError):
        return f"the command was not found: {exc.filename or exc}"
    return str(exc) or type(exc).__name__
