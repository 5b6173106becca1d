"""Incremental parser of generated text into answer text, thinking text and tool calls.

Feed it arbitrary chunks (the streaming detokenizer's deltas); it returns `TextDelta`,
`ThinkingDelta` and `ToolCallEvent`s as soon as they are certain, holding back only a
possible partial control token at the end of a chunk. It stops at `<turn|>` (end of turn),
`<eos>` (eos) or `<|tool_response>` (the model hands over to the tool runner). A chunk fed
with `plain=True` (text the model wrote with ordinary tokens, not control tokens) is only ever
text: a control-token string in it is not a marker.

Formats (Gemma 4): thinking is `<|channel>thought\\n…<channel|>`; a tool call is
`<|tool_call>call:NAME{key:value,…}<tool_call|>` with bare keys and strings delimited by
`<|"|>` on both sides. `render_tool_call` is the inverse, byte-identical to what the chat
template renders for identifier keys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..events import StopReason, TextDelta, ThinkingDelta, ToolCall, ToolCallEvent
from .tokenizer import SpecialTokens

ParserEvent = TextDelta | ThinkingDelta | ToolCallEvent
# Plain chunks are stored with "<" and the escape character itself escaped, so no marker
# (they all start with "<") can match inside them; other chunks have only the escape
# character escaped (a model can write it too); emitted text is unescaped.
_ESC = "\x00"
_PLAIN = str.maketrans({_ESC: _ESC + "e", "<": _ESC + "l"})
_MARKED = str.maketrans({_ESC: _ESC + "e"})
_UNESCAPE = re.compile(_ESC + "([el])")


def _unescape(text: str) -> str:
    return (
        _UNESCAPE.sub(lambda m: _ESC if m.group(1) == "e" else "<", text) if _ESC in text else text
    )


def _unescape_value(value: Any) -> Any:
    if isinstance(value, str):
        return _unescape(value)
    if isinstance(value, dict):
        return {_unescape_value(k): _unescape_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape_value(v) for v in value]
    return value


_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|-?inf|nan")
_BARE_KEY = re.compile(r"[^\s:,{}\[\]<>\"]+")


class ToolCallSyntaxError(ValueError):
    """A tool-call body that is not `call:NAME{...}` in the Gemma 4 syntax."""


# -- rendering (inverse of parsing) ------------------------------------------------------


def _jinja_sort_key(item: tuple[str, Any]) -> str:
    return item[0].lower() if isinstance(item[0], str) else item[0]


def format_argument(value: Any, escape_keys: bool = True, escape: str = '<|"|>') -> str:
    """Render a JSON value the way the template's `format_argument` macro does."""
    if isinstance(value, str):
        if escape in value:
            raise ValueError(f"A tool-call string cannot contain the delimiter {escape!r}.")
        return f"{escape}{value}{escape}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        parts = []
        for key, item in sorted(value.items(), key=_jinja_sort_key):
            parts.append(
                f"{_format_key(key, escape_keys, escape)}:{format_argument(item, escape_keys, escape)}"
            )
        return "{" + ",".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_argument(v, escape_keys, escape) for v in value) + "]"
    if value is None:
        return "null"  # as the template renders none; the parser reads null and None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Tool-call numbers must be finite.")
    return str(value)


def _format_key(key: str, escape_keys: bool, escape: str) -> str:
    key = str(key)
    if escape_keys or not _BARE_KEY.fullmatch(key):
        if escape in key:
            raise ValueError(f"A tool-call key cannot contain the delimiter {escape!r}.")
        return f"{escape}{key}{escape}"
    return key


def render_tool_call(
    name: str, arguments: dict[str, Any], tokens: SpecialTokens | None = None
) -> str:
    """`<|tool_call>call:NAME{k:v,…}<tool_call|>` exactly as the chat template renders a call."""
    t = tokens or SpecialTokens()
    args = ",".join(
        f"{_format_key(k, False, t.escape_token)}:{format_argument(v, False, t.escape_token)}"
        for k, v in sorted(arguments.items(), key=_jinja_sort_key)
    )
    return f"{t.stc_token}call:{name}{{{args}}}{t.etc_token}"


# -- parsing of one call body --------------------------------------------------------------


class _ValueParser:
    def __init__(self, text: str, escape: str):
        self.text = text
        self.escape = escape
        self.pos = 0

    def error(self, what: str) -> ToolCallSyntaxError:
        return ToolCallSyntaxError(f"{what} at offset {self.pos} in {self.text[:200]!r}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.pos)

    def string(self) -> str:
        self.pos += len(self.escape)
        end = self.text.find(self.escape, self.pos)
        if end < 0:
            raise self.error("Unterminated string")
        value = self.text[self.pos : end]
        self.pos = end + len(self.escape)
        return value

    def value(self) -> Any:
        self.skip_ws()
        if self.peek(self.escape):
            return self.string()
        if self.peek("{"):
            return self.obj()
        if self.peek("["):
            return self.array()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",}]":
            if self.peek(self.escape):
                raise self.error("Unexpected string delimiter")
            self.pos += 1
        return _bare_value(self.text[start : self.pos].strip())

    def key(self) -> str:
        self.skip_ws()
        if self.peek(self.escape):
            key = self.string()
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] != ":":
                if self.text[self.pos] in ",{}[]":
                    raise self.error("Malformed key")
                self.pos += 1
            key = self.text[start : self.pos].strip()
        self.skip_ws()
        if not self.peek(":"):
            raise self.error("Expected ':' after key")
        self.pos += 1
        return key

    def obj(self) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        self.skip_ws()
        if self.peek("}"):
            self.pos += 1
            return out
        while True:
            key = self.key()
            out[key] = self.value()
            self.skip_ws()
            if self.peek(","):
                self.pos += 1
                continue
            if self.peek("}"):
                self.pos += 1
                return out
            raise self.error("Expected ',' or '}'")

    def array(self) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        self.skip_ws()
        if self.peek("]"):
            self.pos += 1
            return out
        while True:
            out.append(self.value())
            self.skip_ws()
            if self.peek(","):
                self.pos += 1
                continue
            if self.peek("]"):
                self.pos += 1
                return out
            raise self.error("Expected ',' or ']'")


def _bare_value(text: str) -> Any:
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("null", "None", "none"):
        return None
    if _NUMBER.fullmatch(text):
        try:
            return int(text)
        except ValueError:
            return float(text)
    return text  # an unquoted word: keep it as a string rather than failing the call


def parse_tool_call_body(body: str, escape: str = '<|"|>') -> ToolCall:
    """Parse `call:NAME{...}` (the text between the tool-call markers) into a `ToolCall`."""
    text = body.strip()
    if not text.startswith("call:"):
        raise ToolCallSyntaxError(f"A tool call must start with 'call:', got {text[:60]!r}")
    brace = text.find("{")
    if brace < 0:
        raise ToolCallSyntaxError(f"A tool call needs '{{arguments}}', got {text[:60]!r}")
    name = text[5:brace].strip()
    if not name:
        raise ToolCallSyntaxError("A tool call needs a function name.")
    parser = _ValueParser(text, escape)
    parser.pos = brace
    arguments = parser.obj()
    parser.skip_ws()
    if parser.pos != len(text):
        raise parser.error("Unexpected text after the arguments")
    return ToolCall(name=name, arguments=arguments)


def parse_tool_calls(text: str, tokens: SpecialTokens | None = None) -> list[ToolCall]:
    """All complete tool calls in a finished text (non-incremental convenience)."""
    parser = OutputParser(tokens)
    events = parser.feed(text) + parser.finish()
    return [e.call for e in events if isinstance(e, ToolCallEvent)]


# -- incremental parser -------------------------------------------------------------------


@dataclass
class ParsedOutput:
    """Everything a finished generation said, accumulated from the events."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason | None = None


class OutputParser:
    """Streaming splitter of generated text into answer, thinking and tool calls.

    `feed(chunk)` returns the events that chunk completed; `finish()` flushes the rest and
    fixes `stop_reason` ("end_of_turn", "eos", "tool_call" or "length"). After a stop marker
    all further text is ignored. Tool-call bodies are scanned with string awareness, so a
    `<tool_call|>` inside a `<|"|>…<|"|>` string does not end the call.
    """

    def __init__(self, tokens: SpecialTokens | None = None, *, start_in_thinking: bool = False):
        t = tokens or SpecialTokens()
        self.tokens = t
        self._stops = {t.eot_token: "end_of_turn", t.eos_token: "eos", t.str_token: "tool_call"}
        self._markers = [t.soc_token, t.eoc_token, t.stc_token, *self._stops]
        # Other control strings never belong in visible text (e.g. a stray <|"|> or <|turn>).
        self._dropped = [s for s in t.control_strings() if s not in self._markers]
        self._all = sorted(set(self._markers) | set(self._dropped), key=len, reverse=True)
        self._buf = ""
        self._state = "thinking" if start_in_thinking else "text"
        self._body = ""
        self._scan = 0
        self._in_string = False
        self.stop_reason: StopReason | None = None
        self.result = ParsedOutput()
        self.errors: list[str] = []

    @classmethod
    def for_prompt(cls, prompt: str, tokens: SpecialTokens | None = None) -> OutputParser:
        """A parser whose start state matches the prompt's end (inside an open thought channel or not)."""
        t = tokens or SpecialTokens()
        open_at = prompt.rfind(t.soc_token)
        if open_at >= 0 and prompt.find(t.eoc_token, open_at) < 0:
            return cls.after_channel_open(prompt[open_at + len(t.soc_token) :], t)
        return cls(t)

    @classmethod
    def after_channel_open(cls, header: str, tokens: SpecialTokens | None = None) -> OutputParser:
        """A parser for a reply that starts inside a channel the prompt opened (`header`: the
        prompt's text after `<|channel>`, e.g. "thought\n")."""
        parser = cls(tokens, start_in_thinking=True)
        parser._state = "thinking" if header.startswith("thought") else "channel"
        return parser

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def feed(self, chunk: str, plain: bool = False) -> list[ParserEvent]:
        """Consume a chunk of generated text; return the events it completed. `plain`: the
        chunk came from ordinary tokens, so control-token strings in it are just text."""
        if self.done or not chunk:
            return []
        self._buf += chunk.translate(_PLAIN if plain else _MARKED)
        return self._drain(final=False)

    def finish(self, reason: StopReason | None = None) -> list[ParserEvent]:
        """End of generation: flush held text; `reason` overrides "length" when no stop marker was seen."""
        events = [] if self.done else self._drain(final=True)
        if self._state == "tool_call" and not self.done:
            self.errors.append("incomplete tool call")
            events += self._emit_text(self.tokens.stc_token + self._body)
            self._body = ""
        if self.stop_reason is None:
            self.stop_reason = reason or "length"
        if self.result.tool_calls and self.stop_reason in ("end_of_turn", "eos", "tool_call"):
            self.stop_reason = "tool_call"
        elif self.stop_reason == "tool_call" and not self.result.tool_calls:
            # A tool-response marker with no call before it (or only a malformed one) waits
            # on nothing: the turn simply ended.
            self.stop_reason = "end_of_turn"
        self.result.stop_reason = self.stop_reason
        return events

    # -- internals ---------------------------------------------------------------------

    def _emit_text(self, text: str) -> list[ParserEvent]:
        for dropped in self._dropped:
            text = text.replace(dropped, "")
        text = _unescape(text)
        if not text:
            return []
        if self._state in ("thinking", "channel"):
            self.result.thinking += text
            return [ThinkingDelta(text)]
        self.result.text += text
        return [TextDelta(text)]

    def _partial_marker_len(self, text: str, markers: list[str]) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a marker."""
        best = 0
        start = text.rfind("<", max(0, len(text) - max(len(m) for m in markers)))
        while start >= 0:
            tail = text[start:]
            if any(m.startswith(tail) and m != tail for m in markers):
                best = len(tail)
                break
            start = text.find("<", start + 1)
        return best

    def _drain(self, final: bool) -> list[ParserEvent]:
        events: list[ParserEvent] = []
        while self._buf and not self.done:
            if self._state == "tool_call":
                if not self._drain_tool_call(events, final):
                    break
                continue
            if self._state == "channel":
                header = "thought"
                if not final and (header + "\n").startswith(self._buf):
                    break  # could still be the channel header
                if self._buf.startswith(header + "\n"):
                    self._buf = self._buf[len(header) + 1 :]
                elif self._buf.startswith(header):
                    self._buf = self._buf[len(header) :]
                self._state = "thinking"
                continue
            found_at, found = -1, None
            for marker in self._all:
                at = self._buf.find(marker)
                if at >= 0 and (found_at < 0 or at < found_at):
                    found_at, found = at, marker
            if found is None:
                keep = 0 if final else self._partial_marker_len(self._buf, self._all)
                events += self._emit_text(self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep :]
                break
            events += self._emit_text(self._buf[:found_at])
            self._buf = self._buf[found_at + len(found) :]
            self._on_marker(found)
        return events

    def _on_marker(self, marker: str) -> None:
        t = self.tokens
        if marker in self._stops:
            self.stop_reason = self._stops[marker]  # type: ignore[assignment]
            self._buf = ""
        elif marker == t.soc_token:
            self._state = "channel"
        elif marker == t.eoc_token:
            self._state = "text"
        elif marker == t.stc_token:
            self._return_state = "text" if self._state == "text" else "thinking"
            self._state = "tool_call"
            self._body, self._scan, self._in_string = "", 0, False
        # dropped control strings are simply removed

    def _drain_tool_call(self, events: list[ParserEvent], final: bool) -> bool:
        """Scan the tool-call body; True when the state changed (keep draining)."""
        t = self.tokens
        self._body += self._buf
        self._buf = ""
        body, i = self._body, self._scan
        ends = [t.etc_token, *self._stops]
        while i < len(body):
            if body.startswith(t.escape_token, i):
                self._in_string = not self._in_string
                i += len(t.escape_token)
                continue
            if not self._in_string:
                hit = next((m for m in ends if body.startswith(m, i)), None)
                if hit is not None:
                    self._finish_tool_call(body[:i], hit, events)
                    self._buf = body[i + len(hit) :]
                    return True
            if body[i] == "<" and not final:
                tail = body[i:]
                candidates = [t.escape_token] + ([] if self._in_string else ends)
                if any(m.startswith(tail) and m != tail for m in candidates):
                    break  # a marker may be split across chunks
            i += 1
        self._scan = i
        return False

    def _finish_tool_call(self, body: str, end_marker: str, events: list[ParserEvent]) -> None:
        t = self.tokens
        self._state = getattr(self, "_return_state", "text")
        self._body, self._scan, self._in_string = "", 0, False
        if end_marker != t.etc_token:
            self.errors.append("tool call cut off by a stop marker")
            events += self._emit_text(t.stc_token + body)
            self._on_marker(end_marker)
            return
        try:
            call = parse_tool_call_body(body, t.escape_token)
        except ToolCallSyntaxError as exc:
            self.errors.append(str(exc))
            events += self._emit_text(t.stc_token + body + t.etc_token)
            return
        call = ToolCall(
            name=_unescape(call.name),
            arguments=_unescape_value(call.arguments),
            id=f"call_{len(self.result.tool_calls)}",
        )
        self.result.tool_calls.append(call)
        events.append(ToolCallEvent(call))
