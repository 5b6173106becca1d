"""`gemma-desk import`: bring chats exported as JSON (or a zip of them) into the app's store."""

from __future__ import annotations

import argparse
import sys

from app.storage import open_storage
from app.storage.archive import import_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="a chat exported as JSON, or a zip of them (Export All)")  # fmt: skip
    parser.add_argument("--data-dir", metavar="DIR", help="the app's data folder")


def run(args: argparse.Namespace) -> int:
    failed = False
    with open_storage(args.data_dir, housekeeping=False) as storage:
        for name in args.files:
            report = import_file(storage.conversations, storage.media, name)
            for conversation in report.imported:
                print(f"Imported “{conversation.title or 'Untitled'}” as chat {conversation.id}")
            for what, why in report.failed:
                print(f"gemma-desk import: {what}: {why}", file=sys.stderr)
            failed = failed or bool(report.failed)
    return 1 if failed else 0
