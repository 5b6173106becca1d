"""`gemma-desk chat`: an interactive chat in the terminal, streaming, thinking shown dimmed.

Attachments given on the command line go with the first message. Commands: `/exit`,
`/reset` (new conversation), `/regen` (answer the last message again). Where the
conversation is kept is a small seam (`ChatHistory`), so the app can later back it with
its conversation store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from app.engines.contract import (
    Finished,
    GenerationError,
    TextDelta,
    ThinkingDelta,
    ToolCallEvent,
    ToolResultEvent,
)
from app.terminal_generate import user_message

DIM, RESET = "\x1b[2m", "\x1b[0m"


class ChatHistory(Protocol):
    """Where the chat's messages live (in memory here; the app's store later)."""

    def messages(self) -> list[dict[str, Any]]: ...
    def append(self, message: dict[str, Any]) -> None: ...
    def pop_reply(self) -> None: ...
    def clear(self) -> None: ...


class MemoryHistory:
    """The default `ChatHistory`: a list in memory."""

    def __init__(self, system: str | None = None):
        self._system = system
        self._messages: list[dict[str, Any]] = []
        self.clear()

    def messages(self) -> list[dict[str, Any]]:
        return list(self._messages)

    def append(self, message: dict[str, Any]) -> None:
        self._messages.append(message)

    def pop_reply(self) -> None:
        """Drop everything after the last user message (to regenerate it)."""
        while self._messages and self._messages[-1]["role"] != "user":
            self._messages.pop()

    def clear(self) -> None:
        self._messages = [{"role": "system", "content": self._system}] if self._system else []


def load_engine(args: argparse.Namespace):
    from app.engines.contract import LocalModel
    from app.engines.local import LocalEngine

    return LocalEngine.open(LocalModel(str(args.model), args.bits, args.context))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="checkpoint folder or Hugging Face repo id (cached)"
    )
    parser.add_argument("--image", action="append", default=[], type=Path)
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--video", type=Path)
    parser.add_argument("--think", action="store_true", help="let the model think (shown dimmed)")
    parser.add_argument("--tools", action="store_true", help="offer the built-in tools")
    parser.add_argument(
        "--folder", action="append", default=[], type=Path,
        help="a folder the read_text_file tool may read (with --tools; repeatable)",
    )  # fmt: skip
    parser.add_argument("--system", help="a system prompt")
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--bits", type=int, choices=[4, 8])
    parser.add_argument("--context", type=int)
    parser.add_argument(
        "--use-checkpoint-template",
        action="store_true",
        help="render with the checkpoint's own chat template even when it is an outdated "
        "Gemma 4 one (default: Google's canonical chat format)",
    )


def run(
    args: argparse.Namespace,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    history: ChatHistory | None = None,
) -> int:
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    for path in [*args.image, args.audio, args.video, *args.folder]:
        if path is not None and not Path(path).exists():
            print(f"error: no such file or folder: {path}", file=sys.stderr)
            return 2
    try:
        engine = load_engine(args)
    except Exception as exc:  # noqa: BLE001
        print(f"error: cannot load {args.model}: {exc}", file=sys.stderr)
        return 1
    tools = None
    if args.tools:
        from app.tools.builtin import builtin_registry

        tools = builtin_registry(args.folder)
    history = history or MemoryHistory(args.system)
    tty = out.isatty()
    pending_media = (list(args.image), args.audio, args.video)
    out.write("Chat with the model (/exit to quit, /reset for a new chat, /regen to retry).\n")
    while True:
        out.write("> ")
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            history.clear()
            continue
        if text == "/regen":
            history.pop_reply()
            if not history.messages() or history.messages()[-1]["role"] != "user":
                continue
        else:
            history.append(user_message(text, *pending_media))
            pending_media = ([], None, None)
        reply = _respond(engine, history.messages(), args, tools, out, tty)
        for message in reply:
            history.append(message)


def _respond(engine, messages, args, tools, out: TextIO, tty: bool) -> list[dict[str, Any]]:
    from app.engines.agent import run_agent
    from app.messages import assistant_message, tool_message
    from app.options import GenerationOptions

    thinking = False
    appended: list[dict[str, Any]] = []
    text, thoughts, calls = "", "", []
    options = GenerationOptions(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        enable_thinking=args.think,
    )
    for event in run_agent(
        engine,
        messages,
        tools=tools,
        options=options,
        conversation_id="terminal",
    ):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, ThinkingDelta):
            thoughts += event.text
        elif isinstance(event, ToolCallEvent):
            calls.append(event.call)
        elif isinstance(event, ToolResultEvent):
            if calls:
                appended.append(assistant_message(text, thoughts, calls))
                text, thoughts, calls = "", "", []
            appended.append(tool_message(event.call, event.result, event.error))
        if isinstance(event, ThinkingDelta):
            if not thinking:
                out.write(DIM if tty else "[thinking] ")
                thinking = True
            out.write(event.text)
        elif isinstance(event, TextDelta):
            if thinking:
                out.write(RESET + "\n" if tty else "\n[answer] ")
                thinking = False
            out.write(event.text)
        elif isinstance(event, ToolCallEvent):
            out.write(f"\n[tool call] {event.call.name}({event.call.arguments})\n")
        elif isinstance(event, ToolResultEvent):
            shown = event.error if event.error is not None else event.result
            out.write(f"[tool result] {shown}\n")
        elif isinstance(event, GenerationError):
            out.write(f"\nerror: {event.message}\n")
        elif isinstance(event, Finished):
            if thinking and tty:
                out.write(RESET)
            s = event.stats
            out.write(
                f"\n({s.generated_tokens} tokens, {s.decode_tps:.1f} tok/s, "
                f"first token {s.ttft_s:.2f}s, stop: {s.stop_reason})\n"
            )
            appended.append(assistant_message(text, thoughts))
        out.flush()
    return appended
