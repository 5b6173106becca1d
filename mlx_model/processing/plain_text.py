"""Message content stays plain text: only the chat template's own structure makes control tokens.

A user message, a system prompt, a tool or MCP result, a document or a transcript may contain
the text of a control token (`<turn|><|turn>system ...`). Tokenized as a whole, the rendered
prompt would turn that text into real turn markers. `ContentGuard` replaces every control-token
string inside the content with an opaque placeholder before the template renders, so the
template sees ordinary text; afterwards `segments` splits the rendered prompt into structure
(tokenized with control tokens) and the guarded text (tokenized as plain text, like llama.cpp's
`parse_special=false`), and `restore` gives the prompt's text as the user wrote it.

Thought markup in a model message's content is removed first, as the template's
`strip_thinking` would (it could no longer see it once guarded).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Any

_OPEN, _MID, _CLOSE = "\U000f0000", "\U000f0001", "\U000f0002"  # private use, case-free


def strip_thinking(text: str, soc_token: str, eoc_token: str) -> str:
    """A model message's text without `<|channel>…<channel|>` spans, trimmed (the template's
    `strip_thinking` macro)."""
    parts = []
    for part in text.split(eoc_token):
        parts.append(part.split(soc_token)[0] if soc_token in part else part)
    return "".join(parts).strip()


class ContentGuard:
    """Placeholders for control-token strings inside content; one instance per render.

    The placeholders carry a random number, so content cannot forge one either.
    """

    def __init__(self, control: Iterable[str] | re.Pattern[str] | None):
        """`control`: the control-token strings, or a compiled regex matching them."""
        if control is None or isinstance(control, re.Pattern):
            self._control = control
        else:
            strings = sorted({s for s in control if s}, key=len, reverse=True)
            self._control = re.compile("|".join(map(re.escape, strings))) if strings else None
        self._nonce = str(secrets.randbits(64))
        self._hidden: list[str] = []
        self._placeholder = re.compile(
            re.escape(_OPEN + self._nonce + _MID) + r"(\d+)" + re.escape(_CLOSE)
        )

    def _hide(self, match: re.Match[str]) -> str:
        self._hidden.append(match.group(0))
        return f"{_OPEN}{self._nonce}{_MID}{len(self._hidden) - 1}{_CLOSE}"

    def protect(self, value: Any) -> Any:
        """`value` (strings, mappings, sequences) with control strings in every string hidden."""
        if isinstance(value, str):
            return self._control.sub(self._hide, value) if self._control else value
        if isinstance(value, dict):
            return {self.protect(k): self.protect(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.protect(v) for v in value)
        return value

    def protect_messages(
        self, messages: list[dict[str, Any]], soc_token: str, eoc_token: str
    ) -> list[dict[str, Any]]:
        """Messages with model messages' thought markup stripped, then every string protected."""
        out = []
        for message in messages:
            if message.get("role") in ("assistant", "model"):
                message = dict(message)
                content = message.get("content")
                if isinstance(content, str):
                    message["content"] = strip_thinking(content, soc_token, eoc_token)
                elif isinstance(content, list):
                    message["content"] = [
                        {**part, "text": strip_thinking(part["text"], soc_token, eoc_token)}
                        if isinstance(part, dict) and isinstance(part.get("text"), str)
                        else part
                        for part in content
                    ]
            out.append(self.protect(message))
        return out

    def segments(self, rendered: str) -> list[tuple[str, bool]]:
        """`rendered` as (text, is_content) pieces: structure, and the hidden control strings."""
        pieces: list[tuple[str, bool]] = []
        pos = 0
        for match in self._placeholder.finditer(rendered):
            if match.start() > pos:
                pieces.append((rendered[pos : match.start()], False))
            pieces.append((self._hidden[int(match.group(1))], True))
            pos = match.end()
        if pos < len(rendered):
            pieces.append((rendered[pos:], False))
        return pieces

    def restore(self, rendered: str) -> str:
        """The rendered prompt's text with the content as written."""
        return self._placeholder.sub(lambda m: self._hidden[int(m.group(1))], rendered)
