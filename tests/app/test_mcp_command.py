"""`gemma-desk mcp`: Claude Desktop's MCP servers imported into the settings, and listed."""

from __future__ import annotations

import json

from app.cli import main
from app.settings import SettingsStore
from app.storage import open_storage


def claude_file(tmp_path):
    file = tmp_path / "claude_desktop_config.json"
    servers = {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem"]},
        "web": {"url": "http://127.0.0.1:9/sse"},
    }
    file.write_text(json.dumps({"mcpServers": servers}))
    return file


def stored_servers(data_dir) -> tuple[dict, ...]:
    storage = open_storage(data_dir, housekeeping=False)
    try:
        return SettingsStore(storage.db).settings.mcp_servers
    finally:
        storage.close()


def test_import_adds_claude_desktops_servers_untrusted_once(tmp_path, capsys):
    data = tmp_path / "data"
    args = ["mcp", "import-claude", "--file", str(claude_file(tmp_path)), "--data-dir", str(data)]
    assert main(args) == 0
    assert "Imported files" in capsys.readouterr().out
    servers = stored_servers(data)
    assert [(s["name"], s["trusted"]) for s in servers] == [("files", False), ("web", False)]
    assert servers[0]["command"][0] == "npx" and servers[1]["url"] == "http://127.0.0.1:9/sse"
    assert main(args) == 0  # a second import adds nothing
    assert "No new MCP servers" in capsys.readouterr().out
    assert len(stored_servers(data)) == 2


def test_list_shows_the_settings_servers(tmp_path, capsys):
    data = tmp_path / "data"
    main(["mcp", "import-claude", "--file", str(claude_file(tmp_path)), "--data-dir", str(data)])
    capsys.readouterr()
    assert main(["mcp", "list", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "files  npx -y @modelcontextprotocol/server-filesystem" in out
    assert "web  http://127.0.0.1:9/sse" in out


def test_a_missing_file_is_named(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    args = ["mcp", "import-claude", "--file", str(missing), "--data-dir", str(tmp_path / "d")]
    assert main(args) == 1
    assert str(missing) in capsys.readouterr().err
