"""Command-line flags the subcommands share: the data folder, the model, the generation options.

The generation flags are checked with the options' own rules (`app.options.LIMITS`), so a
value the GUI or the server would refuse is refused here too, naming the flag. Flags left
out keep the settings' values: `gemma-desk chat` and the GUI generate the same way.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.keep_alive import KeepAliveError, parse_keep_alive
from app.options import IMAGE_BUDGETS, LIMITS, OptionError

_SAMPLING_FLAGS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed")


def _checked(name: str) -> Any:
    limit = LIMITS[name]

    def parse(text: str) -> Any:
        try:
            value = int(text) if limit.integer else float(text)
            return limit.check(name, value)
        except (ValueError, OptionError) as exc:
            raise argparse.ArgumentTypeError(f"{limit.describe()} ({exc})") from None

    return parse


def add_session_arguments(parser: argparse.ArgumentParser, *, model_required: bool = False) -> None:
    """`--data-dir`, which model (`--model PATH` or `--remote URL`; default: the settings')
    and its speculative drafter (`--draft-model PATH|REPO`, `--no-draft`)."""
    parser.add_argument(
        "--data-dir", metavar="DIR", help="the app's data folder (conversations, settings)"
    )
    parser.add_argument(
        "--model", required=model_required,
        help="checkpoint folder or Hugging Face repo id (cached); "
        "default: the model chosen in the app's settings",
    )  # fmt: skip
    parser.add_argument(
        "--remote", metavar="URL", help="an OpenAI-compatible server to use instead"
    )
    parser.add_argument("--remote-model", default="", help="the remote server's model id")
    parser.add_argument("--bits", type=int, choices=[4, 8], help="quantize the weights on load")
    parser.add_argument("--context", type=int, help="context length to plan for (tokens)")
    parser.add_argument(
        "--use-checkpoint-template", action="store_true", default=None,
        help="render with the checkpoint's own chat template even when it is an outdated "
        "Gemma 4 one (default: the settings' choice, else Google's canonical chat format)",
    )  # fmt: skip
    draft = parser.add_mutually_exclusive_group()
    draft.add_argument(
        "--draft-model", metavar="PATH|REPO",
        help="the drafter for speculative decoding (faster answers, the same output): a folder "
        "or a cached Hugging Face repo id; default: the model's own assistant when it is "
        "beside the model or in the cache and fits in memory",
    )  # fmt: skip
    draft.add_argument(
        "--no-draft", action="store_true", help="decode without a drafter (no speculative decoding)"
    )


def _keep_alive(text: str) -> str:
    try:
        parse_keep_alive(text)
    except KeepAliveError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_keep_alive_argument(parser: argparse.ArgumentParser) -> None:
    """`--keep-alive DURATION`: unload the local model after that much idle time (this run)."""
    parser.add_argument(
        "--keep-alive", type=_keep_alive, metavar="DURATION",
        help="unload the model after this much idle time, e.g. 30m, 2h, 600 (seconds) or "
        "never; it loads again with the next message (default: the settings', 30m)",
    )  # fmt: skip


def apply_keep_alive(session: Any, args: argparse.Namespace) -> None:
    """The `--keep-alive` flag, if given, for this run (the settings stay as they are)."""
    if getattr(args, "keep_alive", None) is not None:
        session.set_keep_alive(args.keep_alive)


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The generation options as flags (left out: the settings' values)."""
    parser.add_argument("--max-tokens", type=_checked("max_tokens"))
    parser.add_argument("--temperature", type=_checked("temperature"), help="0 = greedy")
    parser.add_argument("--top-p", type=_checked("top_p"))
    parser.add_argument("--top-k", type=_checked("top_k"), help="0 = off")
    parser.add_argument("--min-p", type=_checked("min_p"))
    parser.add_argument("--repetition-penalty", type=_checked("repetition_penalty"))
    parser.add_argument("--seed", type=_checked("seed"))
    parser.add_argument(
        "--image-budget", type=int, choices=IMAGE_BUDGETS, help="soft tokens per image"
    )
    parser.add_argument(
        "--think", action="store_true", default=None, help="let the model think first"
    )


def generation_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The generation flags given on the command line, as option overrides."""
    values = {name: getattr(args, name, None) for name in (*_SAMPLING_FLAGS, "max_tokens")}
    values["image_budget"] = getattr(args, "image_budget", None)
    values["enable_thinking"] = getattr(args, "think", None)
    return {name: value for name, value in values.items() if value is not None}


def draft_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`--draft-model` / `--no-draft` as `LocalModel` fields (empty: the settings decide)."""
    if getattr(args, "no_draft", False):
        return {"speculative": False}
    if getattr(args, "draft_model", None):
        return {"speculative": True, "draft_model": str(args.draft_model)}
    return {}


def load_model(session: Any, args: argparse.Namespace) -> Any:
    """Start loading what the flags (or else the settings) choose; None when nothing is chosen."""
    if getattr(args, "remote", None):
        return session.load_remote(args.remote, args.remote_model)
    draft = draft_overrides(args)
    if getattr(args, "model", None):
        pairs = (("bits", args.bits), ("context_length", args.context),
                 ("use_checkpoint_template", getattr(args, "use_checkpoint_template", None)))  # fmt: skip
        overrides = {k: v for k, v in pairs if v}
        return session.load_local(str(args.model), **overrides, **draft)
    settings = session.settings
    if draft and settings.backend == "local" and settings.model_path:
        return session.load_local(settings.model_path, **draft)
    return session.load_from_settings()


def load_model_and_wait(session: Any, args: argparse.Namespace) -> int:
    """Load what the flags (or else the settings) choose and wait for it: 0 when it is ready,
    else the exit code after saying why on stderr (2: nothing chosen, 1: it did not load)."""
    load = load_model(session, args)
    if load is None:
        print("error: no model chosen: give --model or --remote, or choose one in the app",
              file=sys.stderr)  # fmt: skip
        return 2
    load.wait()
    if load.error is not None:
        print(f"error: cannot load {load.args['path']}: {load.error.message}", file=sys.stderr)
        return 1
    return 0
