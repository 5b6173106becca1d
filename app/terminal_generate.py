"""`gemma-desk generate`: one answer for one prompt, for scripts (plain text or one JSON object)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from mlx_model.events import GenerationError, TextDelta, ThinkingDelta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="checkpoint folder or Hugging Face repo id (cached)"
    )
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--system", help="a system prompt")
    parser.add_argument(
        "--image", action="append", default=[], type=Path, help="an image (repeatable)"
    )
    parser.add_argument("--audio", type=Path, help="an audio clip")
    parser.add_argument("--video", type=Path, help="a video clip")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float, help="0 = greedy (default: the checkpoint's)")
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--think", action="store_true", help="let the model think first")
    parser.add_argument("--bits", type=int, choices=[4, 8], help="quantize the weights on load")
    parser.add_argument("--context", type=int, help="context length to plan for (tokens)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--use-checkpoint-template",
        action="store_true",
        help="render with the checkpoint's own chat template even when it is an outdated "
        "Gemma 4 one (default: Google's canonical chat format)",
    )


def user_message(
    text: str,
    images: list[Path] = (),  # type: ignore[assignment]
    audio: Path | None = None,
    video: Path | None = None,
) -> dict[str, Any]:
    """A user message in the Hugging Face chat shape, media in the model card's order."""
    from mlx_model.processing import order_content

    attachments: list[dict[str, Any]] = [{"type": "image", "image": str(p)} for p in images]
    if video is not None:
        attachments.append({"type": "video", "video": str(video)})
    if audio is not None:
        attachments.append({"type": "audio", "audio": str(audio)})
    if not attachments:
        return {"role": "user", "content": text}
    return {"role": "user", "content": order_content(text, attachments)}


def load_engine(args: argparse.Namespace):
    from mlx_model.engine import Engine
    from mlx_model.hub import resolve_checkpoint

    options: dict[str, Any] = {}
    if getattr(args, "bits", None):
        options["bits"] = args.bits
    if getattr(args, "context", None):
        options["context_length"] = args.context
    if getattr(args, "use_checkpoint_template", False):
        options["use_checkpoint_template"] = True
    return Engine.load(resolve_checkpoint(args.model), **options)


def run(args: argparse.Namespace) -> int:
    for path in [*args.image, args.audio, args.video]:
        if path is not None and not Path(path).is_file():
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
    try:
        engine = load_engine(args)
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        print(f"error: cannot load {args.model}: {exc}", file=sys.stderr)
        return 1
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append(user_message(args.prompt, args.image, args.audio, args.video))
    options = dict(
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        seed=args.seed,
        enable_thinking=args.think,
    )
    if args.json:
        result = engine.generate(messages, **options)
        if result.error is not None:
            print(
                json.dumps({"error": {"kind": result.error.kind, "message": result.error.message}})
            )
            return 1
        print(json.dumps(result_json(result), ensure_ascii=False))
        return 0
    error = None
    for event in engine.stream(messages, **options):
        if isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, ThinkingDelta):
            sys.stderr.write(event.text)
        elif isinstance(event, GenerationError):
            error = event
    sys.stdout.write("\n")
    if error is not None:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    return 0


def result_json(result) -> dict[str, Any]:
    """The `--json` object: token_ids, text, thinking, tool_calls and stats."""
    stats = dataclasses.asdict(result.stats)
    stats["extra"] = {k: v for k, v in stats["extra"].items() if k != "messages"}
    return {
        "token_ids": list(result.token_ids),
        "text": result.text,
        "thinking": result.thinking,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls
        ],
        "stats": json.loads(json.dumps(stats, default=str)),
    }
