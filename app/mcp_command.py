"""`gemma-desk mcp`: list the MCP servers the app starts, or import Claude Desktop's.

`gemma-desk mcp import-claude [--file PATH]` reads Claude Desktop's configuration (this
machine's, or the file given), adds its servers that the app does not have yet to the
`mcp_servers` setting, untrusted (each call asks first), and prints their names. The app
starts them the next time it opens (or at once, when it is open: the setting changed).
Nothing is started here.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.paths import add_data_dir_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list the MCP servers in the settings")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    add_data_dir_argument(listing)
    claude = actions.add_parser(
        "import-claude", help="add the MCP servers of Claude Desktop's configuration"
    )
    claude.add_argument(
        "--file", help="the configuration file (default: Claude Desktop's on this machine)"
    )
    add_data_dir_argument(claude)


def run(args: argparse.Namespace) -> int:
    from app.mcp_client import MCPConfigError
    from app.settings import SettingsError, SettingsStore
    from app.storage import open_storage

    storage = open_storage(args.data_dir, housekeeping=False)
    try:
        store = SettingsStore(storage.db)
        servers = store.settings.mcp_servers
        if args.action == "list":
            return _list(servers, args.json)
        from app.mcp_config import import_claude_desktop_servers

        try:
            imported = import_claude_desktop_servers(
                args.file, existing=[s["name"] for s in servers]
            )
            if imported:
                store.update(mcp_servers=(*servers, *(c.to_dict() for c in imported)))
        except (MCPConfigError, SettingsError) as exc:
            print(f"gemma-desk mcp: {exc}", file=sys.stderr)
            return 1
        if not imported:
            print("No new MCP servers to import.")
        for config in imported:
            print(f"Imported {config.name} (asks before each call)")
        return 0
    finally:
        storage.close()


def _list(servers: tuple[dict, ...], as_json: bool) -> int:
    if as_json:
        print(json.dumps(list(servers), ensure_ascii=False))
        return 0
    if not servers:
        print("No MCP servers. Import Claude Desktop's: gemma-desk mcp import-claude")
    for entry in servers:
        where = entry.get("url") or " ".join(entry.get("command") or ())
        flags = ["trusted"] if entry.get("trusted") else []
        if entry.get("enabled") is False:
            flags.append("disabled")
        suffix = f"  ({', '.join(flags)})" if flags else ""
        print(f"{entry['name']}  {where}{suffix}")
    return 0
