"""`gemma-desk serve`: load a checkpoint and serve it over an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from app.server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, ServerConfigError

API_KEY_ENV = "GEMMA_DESK_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="checkpoint folder or Hugging Face repo id (cached) to serve"
    )
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
        default=os.environ.get(API_KEY_ENV, ""),
        help=f"require this key as 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}); "
        "required when --host is not a loopback address",
    )
    parser.add_argument(
        "--model-id",
        default="",
        help="model id clients use (default: the repo id or the folder's name)",
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
    parser.add_argument(
        "--context-length", type=int, default=None, help="tokens of KV cache to plan for"
    )
    parser.add_argument(
        "--use-checkpoint-template",
        action="store_true",
        help="render with the checkpoint's own chat template even when it is an outdated "
        "Gemma 4 one (default: Google's canonical chat format)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    folders = tuple(Path(f).expanduser().resolve() for f in args.allow_folder)
    for folder in folders:
        if not folder.is_dir():
            raise ServerConfigError(f"--allow-folder {folder} is not a folder.")
    return ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        model_id=args.model_id,
        allowed_folders=folders,
        max_waiting=args.max_waiting,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
    ).validate()


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ServerConfigError as exc:
        print(f"gemma-desk serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from app.engine_service import EngineService
    from app.server.app import create_app
    from app.server.engine_bridge import model_id_for
    from app.server.runner import uvicorn_config

    service = EngineService()
    try:
        from app.engines.contract import LocalModel

        print(f"Loading {args.model} ...", file=sys.stderr)
        spec = LocalModel(
            args.model,
            context_length=args.context_length,
            use_checkpoint_template=args.use_checkpoint_template,
        )
        job = service.load(spec)
        job.wait()
        if job.error is not None:
            print(f"gemma-desk serve: {job.error.message}", file=sys.stderr)
            return 1
        app = create_app(service, config)
        server = uvicorn.Server(uvicorn_config(app, config, log_level="info"))
        model_id = model_id_for(service.model_path, config.model_id)
        print(
            f"Serving {model_id!r} at http://{config.host}:{config.port}/v1 (Ctrl-C stops)",
            file=sys.stderr,
        )
        asyncio.run(server.serve())
        return 0 if server.started else 1
    finally:
        service.shutdown()
