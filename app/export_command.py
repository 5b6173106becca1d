"""`gemma-desk export`: write one chat (Markdown or JSON) or all of them (a zip) to a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.storage import open_storage
from app.storage.archive import FORMATS, SUFFIXES, export_all, export_conversation, file_stem
from app.storage.conversations import StorageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("conversation", nargs="?", type=int,
                        help="the chat's number (`gemma-desk chat --list` shows them)")  # fmt: skip
    parser.add_argument(
        "--all", action="store_true", help="every chat, into one zip of JSON exports"
    )
    parser.add_argument("--format", choices=FORMATS, default="markdown",
                        help="one chat as Markdown (to read) or JSON (to import again)")  # fmt: skip
    parser.add_argument("--media", action="store_true",
                        help="put the chat's pictures and recordings inside the JSON")  # fmt: skip
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="the file to write (default: the chat's title in this folder)")  # fmt: skip
    parser.add_argument("--data-dir", metavar="DIR", help="the app's data folder")


def run(args: argparse.Namespace) -> int:
    if args.all == (args.conversation is not None):
        print("gemma-desk export: give a chat's number or --all.", file=sys.stderr)
        return 2
    with open_storage(args.data_dir, housekeeping=False) as storage:
        store, media = storage.conversations, storage.media
        try:
            if args.all:
                out, count = export_all(
                    store, media, args.output or "Gemma Desk chats.zip", with_media=args.media
                )
                print(f"Exported {count} chats to {out}")
                return 0
            conversation = store.get_conversation(args.conversation)
            output = args.output or Path(file_stem(conversation.title) + SUFFIXES[args.format])
            out = export_conversation(store, media, conversation.id, output, args.format,
                                      with_media=args.media)  # fmt: skip
        except (StorageError, OSError) as exc:
            print(f"gemma-desk export: {exc}", file=sys.stderr)
            return 1
    print(f"Exported “{conversation.title or 'Untitled'}” to {out}")
    return 0
