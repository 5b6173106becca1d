"""`gemma-desk chat`: the conversation of the app, in the terminal.

It runs on the same `AppSession` as the GUI: conversations are saved to the same store and
appear in the GUI (`--list` shows them, `--continue ID` picks one up again, from either), the settings choose
the model or the remote backend (flags may override them for one run), MCP servers in the
settings offer their tools with the same approval (a y/N question here; "always" allows an
MCP tool from then on, as the GUI's "Always Allow This Tool"). Answers stream,
thinking dimmed on a terminal; how far a long prompt has been read goes to stderr.

Lines starting with `/` are commands and never reach the model (`//text` sends `/text`):
/help, /image PATH, /audio PATH, /video PATH, /file PATH (attach to the next message:
media of any length, a document or a folder),
/think on|off, /system TEXT, /new, /regen, /exit.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from app.cli_args import (
    add_generation_arguments,
    add_keep_alive_argument,
    add_session_arguments,
    apply_keep_alive,
    generation_overrides,
    load_model_and_wait,
)
from app.conversation_controller import MessageAdded, MessageDelta, MessageProgress
from app.errors import MEDIA_KINDS, ErrorKind, kind_of
from app.options import OptionError
from app.session import ApprovalRequested, AppSession, Notice
from app.storage.conversations import StorageError
from app.terminal_progress import PrefillLine
from mlx_model.processing.errors import MediaError

DIM, RESET = "\x1b[2m", "\x1b[0m"
HELP = """Commands (a line starting with / is never sent to the model; //text sends /text):
  /image PATH, /audio PATH, /video PATH   attach a file of that kind to your next message
  /file PATH                              attach any file: media, a document or a folder
  /think on|off                           let the model think first (shown dimmed)
  /system TEXT                            this conversation's system prompt (no TEXT: none)
  /new                                    start a new conversation
  /regen                                  answer the last message again
  /help                                   this list
  /exit                                   quit (the conversation stays saved)"""
ATTACH_KINDS = {"/image": "image", "/audio": "audio", "/video": "video", "/file": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_arguments(parser)
    parser.add_argument("--continue", dest="resume", type=int, metavar="ID",
                        help="continue a saved conversation (--list shows their numbers)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the saved conversations and quit")
    parser.add_argument("--image", action="append", default=[], type=Path,
                        help="attach to the first message (repeatable)")  # fmt: skip
    parser.add_argument("--audio", type=Path, help="attach to the first message")
    parser.add_argument("--video", type=Path, help="attach to the first message")
    parser.add_argument("--system", help="the system prompt of a new conversation")
    parser.add_argument("--tools", action="store_true", help="offer the built-in tools")
    parser.add_argument("--folder", action="append", default=[], type=Path,
                        help="a folder the read_text_file tool may read (with --tools)")  # fmt: skip
    parser.add_argument("--no-mcp", action="store_true", help="do not start the MCP servers")
    add_keep_alive_argument(parser)
    add_generation_arguments(parser)


class TerminalChat:
    """One terminal conversation over a session; `handle(line)` for each line typed."""

    def __init__(self, session: AppSession, args: argparse.Namespace, stdin: TextIO, out: TextIO):
        self.session, self.args, self.stdin, self.out = session, args, stdin, out
        self.tty = out.isatty()
        self.overrides = generation_overrides(args)
        self.pending: list[Any] = []  # attachments for the next message
        self.conversation_id = 0
        self._thinking = False
        self._reading = PrefillLine(sys.stderr)
        self._lock = threading.Lock()  # the engine thread writes answers, this one prompts
        session.can_ask = True
        session.subscribe(self._on_session_event)
        session.controller.subscribe(self._on_controller_event)

    # -- conversations ------------------------------------------------------------------------

    def open(self, resume: int | None, system: str | None) -> None:
        store = self.session.storage.conversations
        if resume is not None:
            conversation = store.get_conversation(resume)  # StorageError when there is none
            self.conversation_id = conversation.id
            shown = [m for m in store.messages(conversation.id) if m.role in ("user", "assistant")]
            self.write(
                f"Continuing “{conversation.title or 'Untitled'}” ({len(shown)} messages).\n"
            )
        else:
            self.conversation_id = self.session.controller.new_conversation().id
            if system:
                store.update_conversation(self.conversation_id, system_prompt=system)
        self.write(f"Conversation {self.conversation_id}: /help lists the commands.\n")

    # -- one line -------------------------------------------------------------------------------

    def handle(self, line: str) -> bool:
        """Act on one typed line; False when the chat should end."""
        text = line.rstrip("\n")
        if not text.strip():
            return True
        if text.startswith("//"):
            return self.send(text[1:]) or True
        if not text.startswith("/"):
            return self.send(text) or True
        command, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if command in ("/exit", "/quit"):
            return False
        if command == "/help":
            self.write(HELP + "\n")
        elif command in ATTACH_KINDS:
            self.attach(ATTACH_KINDS[command], rest)
        elif command == "/think" and rest in ("on", "off"):
            self.overrides["enable_thinking"] = rest == "on"
            self.write(f"Thinking {rest}.\n")
        elif command == "/system":
            store = self.session.storage.conversations
            store.update_conversation(self.conversation_id, system_prompt=rest)
            self.write("System prompt set.\n" if rest else "System prompt cleared.\n")
        elif command in ("/new", "/reset"):
            self.conversation_id = self.session.controller.new_conversation().id
            self.pending.clear()
            self.write(f"Conversation {self.conversation_id}.\n")
        elif command == "/regen":
            self.run_turn(
                lambda: self.session.controller.regenerate(self.conversation_id, **self.overrides)
            )
        else:
            self.write(
                f"Unknown command {command}{' ' + rest if rest else ''}: /help lists them.\n"
            )
        return True

    def attach(self, kind: str | None, argument: str) -> None:
        paths = shlex.split(argument) if argument else []
        if len(paths) != 1:
            self.write("Give one file, e.g. /image ~/Pictures/cat.jpg\n")
            return
        path = Path(paths[0]).expanduser()
        try:
            attachment = self.session.ingestor.from_path(path)
        except Exception as exc:  # noqa: BLE001 - said to the user, the chat goes on
            if kind_of(exc) not in {*MEDIA_KINDS, ErrorKind.NOT_FOUND} and not isinstance(
                exc, OSError
            ):
                raise
            self.write(f"Cannot attach {path.name}: {exc}\n")
            return
        if kind is not None and attachment.kind != kind:
            self.write(
                f"{path.name} is {attachment.kind}, not {kind}: use /file or /{attachment.kind}.\n"
            )
            return
        self.pending.append(attachment)
        self.write(f"Attached {attachment.kind} {attachment.filename} to your next message.\n")

    def send(self, text: str) -> None:
        attachments, self.pending = self.pending, []
        controller = self.session.controller
        self.run_turn(
            lambda: controller.send(self.conversation_id, text, attachments, **self.overrides)
        )

    def run_turn(self, start: Any) -> None:
        """Start a turn, stream it to the terminal, wait for its end and print its numbers."""
        try:
            turn = start()
        except (StorageError, OptionError, MediaError) as exc:  # MediaError: over the budget
            self.write(f"error: {exc}\n")
            return
        turn.wait()
        stats = turn.stats or {}
        with self._lock:
            self._reading.finish()
            if self._thinking and self.tty:
                self.out.write(RESET)
            self._thinking = False
            if turn.status == "error":
                self.out.write(f"\nerror: {turn.error}\n")
            else:
                drafting = (stats.get("extra") or {}).get("speculative") or {}
                kept = (
                    f", {drafting.get('acceptance_rate', 0.0):.0%} of guesses kept"
                    if drafting.get("drafted")
                    else ""
                )
                self.out.write(
                    f"\n({stats.get('generated_tokens', 0)} tokens, {stats.get('decode_tps', 0.0):.1f} "
                    f"tok/s{kept}, first token {stats.get('ttft_s', 0.0):.2f}s, stop: {stats.get('stop_reason')})\n"
                )
            self.out.flush()

    # -- events (the engine thread) ---------------------------------------------------------------

    def _on_controller_event(self, event: Any) -> None:
        if getattr(event, "conversation_id", self.conversation_id) != self.conversation_id:
            return  # another front end's conversation
        if isinstance(event, MessageProgress):
            with self._lock:
                self._reading.update(event.done, event.total, event.eta_s)
        elif isinstance(event, MessageDelta):
            with self._lock:
                self._reading.finish()
                if event.thinking:
                    if not self._thinking:
                        self.out.write(DIM if self.tty else "[thinking] ")
                        self._thinking = True
                    self.out.write(event.thinking)
                if event.text:
                    if self._thinking:
                        self.out.write(RESET + "\n" if self.tty else "\n[answer] ")
                        self._thinking = False
                    self.out.write(event.text)
                self.out.flush()
        elif isinstance(event, MessageAdded) and event.role == "tool":
            result = (
                self.session.storage.conversations.get_message(event.message_id).tool_result or {}
            )
            call = result.get("call") or {}
            shown = result.get("error") or result.get("result")
            self.write(f"\n[tool] {call.get('name')}({call.get('arguments')}) -> {shown}\n")

    def _on_session_event(self, event: Any) -> None:
        if isinstance(event, ApprovalRequested):
            approval = event.approval
            choices = "[y/N/always]" if approval.can_always_allow else "[y/N]"
            self.write(f"\n{approval.prompt} {choices} ")
            answer = self.stdin.readline().strip().lower()
            always = answer in ("a", "always")
            approval.answer(answer in ("y", "yes") or always, always=always)
        elif isinstance(event, Notice):
            self.write(f"[{event.text}]\n")

    def write(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()


def run(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin, out = stdin or sys.stdin, stdout or sys.stdout
    for path in [*args.image, args.audio, args.video, *args.folder]:
        if path is not None and not Path(path).exists():
            print(f"error: no such file or folder: {path}", file=sys.stderr)
            return 2
    with AppSession(args.data_dir) as session:
        if args.list:
            for conversation in session.storage.conversations.list_conversations():
                out.write(f"{conversation.id:>5}  {conversation.title or 'Untitled'}\n")
            return 0
        chat = TerminalChat(session, args, stdin, out)
        apply_keep_alive(session, args)
        try:
            session.generation_options(**chat.overrides)
            chat.open(args.resume, args.system)
        except (OptionError, StorageError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        failed = load_model_and_wait(session, args)
        if failed:
            return failed
        session.watch_memory_pressure()
        if args.tools:
            session.offer_builtin_tools(list(args.folder))
        if session.settings.mcp_servers and not args.no_mcp:
            session.start_mcp(wait=True)
        for name in ("image", "audio", "video"):
            for path in getattr(args, name) if name == "image" else [getattr(args, name)]:
                if path is not None:
                    chat.attach(name, shlex.quote(str(path)))
        chat.write("Chat with the model (/help lists the commands, /exit quits).\n")
        while True:
            chat.write("> ")
            line = stdin.readline()
            if not line:
                chat.write("\n")
                return 0
            if not chat.handle(line):
                return 0
