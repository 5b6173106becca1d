"""Generated token ids -> answer, thinking and tool-call events for one model turn.

`TurnOutput` wraps the processor's streaming detokenizer and its incremental
`OutputParser` (thinking channel, tool-call blocks, end of turn) and adds the caller's stop
strings: answer text is held back while it could still become one, and a stop string
ends the turn without being shown. Tool calls are parsed and given ids, never executed.
"""

from __future__ import annotations

import uuid
from typing import Any

from .events import EngineEvent, StopReason, TextDelta, ThinkingDelta, ToolCall, ToolCallEvent


class TurnOutput:
    """Generated ids -> answer/thinking/tool-call events, with stop strings and stop reason.

    Wraps the processor's streaming detokenizer and incremental `OutputParser`; adds the
    caller's stop strings (answer text is held back while it could still become one). Only
    control token ids are markers: text the model spelled with ordinary tokens is fed as plain.
    """

    def __init__(self, processor: Any, prompt: Any, stop: list[str]):
        self._detok = processor.detokenizer()
        self._parser = processor.output_parser(prompt)
        self._control = processor.tokenizer.special_ids
        self._stop = [s for s in stop if s]
        self._held = ""
        self.text = ""
        self.thinking = ""
        self.tool_calls: list[ToolCall] = []
        self.stop_reason: StopReason | None = None

    def feed(self, token_id: int) -> list[EngineEvent]:
        if self.stop_reason is not None:
            return []
        delta = self._detok.add_token(token_id)
        control = self._control.get(token_id)
        if control is not None and delta.endswith(control):
            parsed = self._parser.feed(delta[: -len(control)], plain=True)
            parsed += self._parser.feed(control)
        else:
            parsed = self._parser.feed(delta, plain=True)
        events = self._convert(parsed)
        if self.stop_reason is None and self._parser.stop_reason is not None:
            self.stop_reason = self._parser.stop_reason
        return events

    def finish(self, reason: StopReason) -> list[EngineEvent]:
        if self.stop_reason == "stop_string":
            return []
        tail = self._detok.finalize()
        events = self._convert(self._parser.feed(tail, plain=True) if tail else [])
        events += self._convert(self._parser.finish(reason))
        if self._held and self.stop_reason != "stop_string":
            events.append(TextDelta(self._held))
            self.text += self._held
            self._held = ""
        if self.stop_reason != "stop_string":
            self.stop_reason = self._parser.stop_reason
        return events

    def _convert(self, parsed: list[Any]) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        for item in parsed:
            if self.stop_reason == "stop_string":
                break
            if isinstance(item, TextDelta):
                events.extend(self._text(item.text))
            elif isinstance(item, ThinkingDelta):
                self.thinking += item.text
                events.append(item)
            elif isinstance(item, ToolCallEvent):
                call = ToolCall(
                    name=item.call.name,
                    arguments=dict(item.call.arguments),
                    id=f"call_{uuid.uuid4().hex[:12]}",
                )
                self.tool_calls.append(call)
                events.append(ToolCallEvent(call))
        return events

    def _text(self, text: str) -> list[EngineEvent]:
        if not self._stop:
            self.text += text
            return [TextDelta(text)] if text else []
        buffer = self._held + text
        for s in self._stop:
            index = buffer.find(s)
            if index >= 0:
                out = buffer[:index]
                self._held = ""
                self.stop_reason = "stop_string"
                self.text += out
                return [TextDelta(out)] if out else []
        keep = 0  # hold back a tail that could be the start of a stop string
        for s in self._stop:
            for n in range(min(len(s) - 1, len(buffer)), 0, -1):
                if buffer.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        out, self._held = (buffer[:-keep], buffer[-keep:]) if keep else (buffer, "")
        self.text += out
        return [TextDelta(out)] if out else []
