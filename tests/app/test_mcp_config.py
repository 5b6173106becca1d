"""MCP as other apps configure it: SSE servers, Claude Desktop / VS Code shapes, the login PATH."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import shell_env
from app.mcp_client import MCPConfigError, MCPManager, MCPServerConfig, MCPStatus, _stdio_command
from app.mcp_config import import_claude_desktop_servers, parse_mcp_servers
from app.settings import SettingsError, validate
from app.tools.registry import ToolRegistry
from mlx_model.events import ToolCall

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sse_server() -> Iterator[int]:
    """The test MCP server (official SDK) serving its SSE transport on 127.0.0.1."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--sse", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def adds(manager: MCPManager) -> int:
    registry = ToolRegistry()
    manager.register_into(registry)
    return registry.execute(ToolCall("add", {"a": 20, "b": 22})).result


@pytest.mark.parametrize("declared", [True, False])
def test_sse_servers_work_like_the_others(sse_server, declared):
    entry = {"name": "sse", "url": f"http://127.0.0.1:{sse_server}/sse"}
    if declared:
        entry["type"] = "sse"
    config = MCPServerConfig.from_dict(entry)
    assert config.transport == "sse"
    with MCPManager(approve=lambda call: True) as manager:
        assert manager.add_server(config) is MCPStatus.READY, manager.status()
        assert adds(manager) == 42


def test_claude_desktop_servers_start_as_written():
    data = {
        "mcpServers": {
            "my calc": {"command": sys.executable, "args": [str(SERVER_SCRIPT)], "env": {}}
        }
    }
    (config,) = parse_mcp_servers(data)
    assert config.name == "my_calc"
    assert config.command == (sys.executable, str(SERVER_SCRIPT))
    with MCPManager(approve=lambda call: True) as manager:
        assert manager.add_server(config) is MCPStatus.READY, manager.status()
        assert adds(manager) == 42


def test_vs_code_and_cursor_entries_with_a_type_are_read():
    data = {
        "servers": {
            "local": {
                "type": "stdio",
                "command": "uvx",
                "args": ["mcp-server-time"],
                "envFile": "x",
            },
            "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"A": "b"}},
            "events": {"type": "sse", "url": "http://127.0.0.1:9/events"},
            "off": {"command": "x", "disabled": True},
        },
        "inputs": [],
    }
    configs = {c.name: c for c in parse_mcp_servers(data)}
    assert configs["local"].transport == "stdio" and configs["local"].command == (
        "uvx",
        "mcp-server-time",
    )
    assert configs["remote"].transport == "http" and configs["remote"].headers == {"A": "b"}
    assert configs["events"].transport == "sse"
    assert not configs["off"].enabled
    assert parse_mcp_servers({"mcp": data})[0].name == "local"  # VS Code settings.json


def test_types_that_do_not_fit_the_entry_are_refused():
    with pytest.raises(MCPConfigError, match="unknown type"):
        MCPServerConfig.from_dict({"name": "a", "command": "x", "type": "websocket"})
    with pytest.raises(MCPConfigError, match="needs a URL"):
        MCPServerConfig.from_dict({"name": "a", "command": "x", "type": "sse"})


def test_the_transport_type_survives_a_round_trip():
    config = MCPServerConfig.from_dict(
        {"name": "a", "url": "http://h/x", "type": "streamable-http"}
    )
    assert MCPServerConfig.from_dict(config.to_dict()) == config


def test_servers_import_from_a_claude_desktop_file(tmp_path):
    file = tmp_path / "claude_desktop_config.json"
    file.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "filesystem": {
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                    },
                    "already": {"command": "uvx", "args": ["x"]},
                },
                "globalShortcut": "",
            }
        )
    )
    imported = import_claude_desktop_servers(file, existing=["already"])
    assert [(c.name, c.command[0], c.trusted) for c in imported] == [("filesystem", "npx", False)]


def test_a_missing_claude_desktop_file_is_named(tmp_path):
    with pytest.raises(MCPConfigError, match="no Claude Desktop configuration"):
        import_claude_desktop_servers(tmp_path / "nope.json")


def test_the_mcp_servers_setting_takes_the_claude_desktop_shape():
    validate("mcp_servers", {"mcpServers": {"notes": {"command": "npx", "args": ["-y", "notes"]}}})
    with pytest.raises(SettingsError, match="unknown type"):
        validate("mcp_servers", {"mcpServers": {"n": {"command": "x", "type": "carrier-pigeon"}}})


# --- a Finder-launched app's PATH ---------------------------------------------------------


@pytest.fixture
def login_shell(tmp_path, monkeypatch):
    """A fake login shell whose profile prints noise and puts `bin/` on PATH; our PATH lacks it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shell = tmp_path / "fake-shell"
    shell.write_text(
        f'#!/bin/sh\necho "Welcome back!"\nPATH="{bin_dir}:$PATH"; export PATH\nshift\nexec /bin/sh -c "$1"\n'
    )
    shell.chmod(0o755)
    monkeypatch.setenv("SHELL", str(shell))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(shell_env, "_cached", None)
    return bin_dir


def test_the_login_shells_path_is_read_past_profile_noise(login_shell):
    assert shell_env.login_shell_path().split(os.pathsep)[0] == str(login_shell)


def test_a_program_only_the_login_shell_knows_is_found_with_its_path(login_shell):
    program = login_shell / "mcp-calc"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SERVER_SCRIPT}"\n')
    program.chmod(0o755)
    command, env = _stdio_command(MCPServerConfig("calc", command=("mcp-calc",)))
    assert command == str(program)
    assert str(login_shell) in env["PATH"].split(os.pathsep)
    with MCPManager(approve=lambda call: True) as manager:
        assert manager.add_server(MCPServerConfig("calc", command=("mcp-calc",))) is MCPStatus.READY
        assert adds(manager) == 42


def test_a_program_on_our_path_is_left_alone(login_shell):
    command, env = _stdio_command(MCPServerConfig("s", command=("sh", "-c", "true")))
    assert command == "sh" and "PATH" not in env
