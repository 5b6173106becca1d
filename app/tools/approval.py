"""Asking the user before a tool runs: one `ToolApproval` per call, answered by any front end.

The engine thread (running the agent loop) creates a `ToolApproval` and waits; the front
end shows `prompt` (a dialog in the GUI, a y/N question in the terminal) and calls
`answer`. The first answer counts; no answer within the timeout counts as no. For a tool
of an MCP server the answer may be "always allow this tool" (`answer(True, always=True)`):
the session remembers it in the `mcp_allowed_tools` setting and later calls of that tool
run without asking.
"""

from __future__ import annotations

import enum
import json
import threading
from typing import Any

APPROVAL_TIMEOUT_S = 300.0  # an unanswered tool approval counts as "no"


class Approval(enum.StrEnum):
    """The user's answer to a tool call (a plain bool means ONCE or DENY)."""

    DENY = "deny"
    ONCE = "once"
    ALWAYS = "always"


class ToolApproval:
    """A tool call waiting for the user's yes or no.

    `call` is an `app.mcp_client.MCPCall` (a tool of an MCP server) or a built-in tool's
    `ToolCall`; either has the tool's name and its arguments.
    """

    def __init__(self, call: Any) -> None:
        self.call = call
        self.approved = False
        self.always = False
        self._answered = threading.Event()
        self._lock = threading.Lock()

    @property
    def prompt(self) -> str:
        arguments = json.dumps(self.call.arguments, ensure_ascii=False)
        if len(arguments) > 400:
            arguments = arguments[:399] + "…"
        server = getattr(self.call, "server", None)
        name = getattr(self.call, "tool", None) or self.call.name
        where = f" of the MCP server “{server}”" if server else ""
        return f"Gemma wants to run the tool “{name}”{where} with {arguments}. Allow it?"

    @property
    def can_always_allow(self) -> bool:
        """Whether "always allow this tool" may be offered (a tool of an MCP server)."""
        return bool(getattr(self.call, "server", None))

    @property
    def answered(self) -> bool:
        return self._answered.is_set()

    def answer(self, approved: bool, *, always: bool = False) -> bool:
        """Record the answer; False when the request was already answered. `always` (with
        `approved`) is "always allow this tool", taken only where `can_always_allow`."""
        with self._lock:
            if self._answered.is_set():
                return False
            self.approved = bool(approved)
            self.always = self.approved and always and self.can_always_allow
            self._answered.set()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until answered (or `timeout`: counts as no); True when approved."""
        return self._answered.wait(timeout) and self.approved

    def decision(self) -> Approval:
        """The answer as an `Approval` (unanswered: DENY)."""
        if not (self.answered and self.approved):
            return Approval.DENY
        return Approval.ALWAYS if self.always else Approval.ONCE
