"""A tiny MCP server over stdio for the MCP client tests, written with the official SDK.

Tools: `add(a, b)` and `word_count(text)`. The environment variable `MCP_TEST_ON_CALL`
makes every call misbehave: `exit` ends the process mid-call, `hang` never answers.
`--http PORT` serves streamable HTTP on 127.0.0.1 instead of stdio, `--sse PORT` the SSE
transport (`/sse` for the event stream, `/messages/` for posts).
"""

from __future__ import annotations

import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("gemma-desk-test")


def _misbehave() -> None:
    mode = os.environ.get("MCP_TEST_ON_CALL", "")
    if mode == "exit":
        os._exit(3)
    if mode == "hang":
        time.sleep(3600)


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    _misbehave()
    return a + b


@server.tool()
def word_count(text: str) -> dict[str, int]:
    """Count the words and characters of a text."""
    _misbehave()
    return {"words": len(text.split()), "characters": len(text)}


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--http":  # streamable HTTP on 127.0.0.1:PORT
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--sse":  # SSE on 127.0.0.1:PORT/sse
        server.run("sse", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
