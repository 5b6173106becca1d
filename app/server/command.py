"""`gemma-desk serve`: load a model (as the app's settings or the flags say) and serve it over an
OpenAI-compatible HTTP API, from the same `AppSession` as the GUI and the chat."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from app.cli_args import (
    add_keep_alive_argument,
    add_session_arguments,
    apply_keep_alive,
    load_model,
)
from app.media_budget import MediaBudget
from app.server.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerConfig,
    ServerConfigError,
    is_loopback,
)

API_KEY_ENV = "GEMMA_DESK_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_arguments(parser)
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}, this Mac only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"require this key as 'Authorization: Bearer KEY'; required when --host is not "
        f"a loopback address. Prefer setting ${API_KEY_ENV} (the default): a key on the "
        "command line is visible to other users in `ps`",
    )
    parser.add_argument(
        "--model-id",
        default="",
        help="model id clients use (default: the repo id or the folder's name)",
    )
    parser.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="NAME",
        help="another name clients may use for the model (repeatable; the repo id, the folder "
        "name and e.g. gemma-4-12b work already)",
    )
    parser.add_argument(
        "--any-model",
        action="store_true",
        help="answer requests for any model name with the served model",
    )
    parser.add_argument(
        "--allow-folder",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder whose files requests may name as image paths (repeatable)",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=8,
        help="requests that may wait while one generates (default 8)",
    )
    parser.add_argument(
        "--max-body-mb", type=float, default=32, help="largest request body in MiB (default 32)"
    )
    budget = MediaBudget()
    parser.add_argument(
        "--max-image-mp",
        type=float,
        default=budget.max_image_pixels / 1e6,
        help=f"largest image in megapixels (default {budget.max_image_pixels / 1e6:g})",
    )
    parser.add_argument(
        "--max-request-mp",
        type=float,
        default=budget.max_request_pixels / 1e6,
        help="megapixels of all images in one request "
        f"(default {budget.max_request_pixels / 1e6:g})",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=budget.max_images,
        help=f"images in one request (default {budget.max_images})",
    )
    parser.add_argument(
        "--max-audio-s",
        type=float,
        default=budget.max_audio_s,
        help=f"seconds of audio in one request (default {budget.max_audio_s:g}, 10 minutes)",
    )
    add_keep_alive_argument(parser)


def api_key_from(args: argparse.Namespace) -> str:
    """The key: `--api-key` when given, else `$GEMMA_DESK_API_KEY` ("" for none)."""
    return args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV, "")


def security_warnings(args: argparse.Namespace, config: ServerConfig) -> list[str]:
    """What `serve` tells the user before it starts about how its key could leak."""
    warnings = []
    if args.api_key:
        warnings.append(
            f"the key given with --api-key is visible to other users of this computer (ps); "
            f"set ${API_KEY_ENV} instead."
        )
    if not is_loopback(config.host):
        warnings.append(
            f"serving plain http:// on {config.host}: clients send the API key and their "
            "prompts unencrypted. Put the server behind TLS (a reverse proxy) or bind to "
            "127.0.0.1."
        )
    return warnings


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    folders = tuple(Path(f).expanduser().resolve() for f in args.allow_folder)
    for folder in folders:
        if not folder.is_dir():
            raise ServerConfigError(f"--allow-folder {folder} is not a folder.")
    return ServerConfig(
        host=args.host,
        port=args.port,
        api_key=api_key_from(args),
        model_id=args.model_id,
        model_aliases=tuple(args.alias),
        accept_any_model=args.any_model,
        allowed_folders=folders,
        max_waiting=args.max_waiting,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        media_budget=MediaBudget(
            max_image_pixels=int(args.max_image_mp * 1e6),
            max_request_pixels=int(args.max_request_mp * 1e6),
            max_images=args.max_images,
            max_audio_s=args.max_audio_s,
        ),
    ).validate()


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ServerConfigError as exc:
        print(f"gemma-desk serve: {exc}", file=sys.stderr)
        return 2
    for warning in security_warnings(args, config):
        print(f"gemma-desk serve: warning: {warning}", file=sys.stderr)
    from app.server.engine_bridge import model_id_for
    from app.server.runner import on_stop_signals, restore_signals
    from app.session import AppSession, Notice

    # Until the server runs (and installs its own handlers), Ctrl-C/SIGTERM just ask to stop:
    # a load cannot be interrupted, so the session's close waits for it and exits cleanly.
    stop = threading.Event()
    previous = on_stop_signals(lambda signum, frame: stop.set())
    try:
        with AppSession(args.data_dir) as session:
            apply_keep_alive(session, args)
            session.subscribe(
                lambda event: (
                    print(event.text, file=sys.stderr) if isinstance(event, Notice) else None
                )
            )
            load = load_model(session, args)
            if load is None:
                print(
                    "gemma-desk serve: no model chosen: give --model or --remote", file=sys.stderr
                )
                return 2
            print(f"Loading {load.args['path']} ...", file=sys.stderr)
            while not load.wait(0.1):
                if stop.is_set():
                    print("Stopped before the model was loaded.", file=sys.stderr)
                    return 0
            if load.error is not None:
                print(f"gemma-desk serve: {load.error.message}", file=sys.stderr)
                return 1
            if stop.is_set():
                return 0
            session.watch_memory_pressure()
            model_id = model_id_for(session.service.model_path, config.model_id)
            print(
                f"Serving {model_id!r} at http://{config.host}:{config.port}/v1 (Ctrl-C stops)",
                file=sys.stderr,
            )
            rc = session.serve_forever(config)
            if rc == 0:
                print("Stopped.", file=sys.stderr)
            return rc
    finally:
        restore_signals(previous)
