"""`gemma-desk generate`: one answer for one prompt, for scripts (plain text or one JSON object).

It runs on the same `AppSession` as the GUI and the chat (the model, the backend and the
generation settings mean the same), but keeps no conversation. `--attach PATH…` takes any
supported kind (image, audio, video, document, folder; long recordings, videos and
documents are fitted, transcribed or retrieved as in the app, progress on stderr);
`--print-prompt` prints the prompt the model would read and exits. `--json-schema FILE`
makes the answer a JSON document of that schema (constrained decoding, strict). The answer
goes to stdout; thinking, how far a long prompt has been read, and errors go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from app.cli_args import (
    add_generation_arguments,
    add_session_arguments,
    generation_overrides,
    load_model_and_wait,
)
from app.engine_service import EngineOutput
from app.engines.agent import AgentResult
from app.engines.contract import GenerationError, PrefillProgress, TextDelta, ThinkingDelta
from app.inputs.events import INPUT_EVENTS
from app.options import OptionError, ResponseFormat
from app.session import AppSession
from app.terminal_progress import PrefillLine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--system", help="a system prompt")
    parser.add_argument(
        "--image", action="append", default=[], type=Path, help="an image (repeatable)"
    )
    parser.add_argument("--audio", type=Path, help="an audio clip")
    parser.add_argument("--video", type=Path, help="a video clip")
    parser.add_argument(
        "--attach", action="extend", nargs="+", type=Path, default=[], metavar="PATH",
        help="files or folders of any supported kind: image, audio, video (any length), "
        "document (PDF, DOCX, text, Markdown, code, CSV/TSV, HTML) or a folder of source",
    )  # fmt: skip
    add_generation_arguments(parser)
    parser.add_argument(
        "--json-schema",
        type=Path,
        metavar="FILE",
        help="answer with a JSON document of the JSON Schema in FILE (enforced while decoding)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--print-prompt", action="store_true",
        help="print the rendered prompt (media runs collapsed, document text shown) and exit",
    )  # fmt: skip


def user_message(
    text: str,
    images: list[Path] = (),  # type: ignore[assignment]
    audio: Path | None = None,
    video: Path | None = None,
    attached: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """A user message in the Hugging Face chat shape, media in the model card's order."""
    from mlx_model.processing import order_content

    attachments: list[dict[str, Any]] = [{"type": "image", "image": str(p)} for p in images]
    if video is not None:
        attachments.append({"type": "video", "video": str(video)})
    if audio is not None:
        attachments.append({"type": "audio", "audio": str(audio)})
    attachments += list(attached)
    if not attachments:
        return {"role": "user", "content": text}
    return {"role": "user", "content": order_content(text, attachments)}


def check_media(
    args: argparse.Namespace,
    model_path: str | None,
    attached: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> str | None:
    """Check the command line's media from their headers against the request budget (and the
    checkpoint's limit per audio clip) before anything is decoded; the problem, or None.
    Recordings and videos given with `--attach` may be of any length (read clip by clip)."""
    from app.attachments import MediaLimits
    from app.media_budget import MediaBudget, check_files
    from mlx_model.processing.errors import MediaError

    files = [("image", p) for p in args.image]
    files += [("image", part["image"]) for part in attached if part["type"] == "image"]
    files += [(kind, p) for kind, p in (("video", args.video), ("audio", args.audio)) if p]
    if not files:
        return None
    limits = MediaLimits.from_checkpoint(model_path) if model_path else MediaLimits.defaults()
    try:
        check_files(files, MediaBudget(), max_clip_s=limits.max_audio_s)
    except MediaError as exc:
        return str(exc)
    return None


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from app.inputs.cli import part_for_path
    from mlx_model.processing.errors import MediaError

    out = out or sys.stdout
    for path in [*args.image, args.audio, args.video]:
        if path is not None and not Path(path).is_file():
            print(f"error: no such file: {path}", file=sys.stderr)
            return 2
    try:
        answer_format = schema_format(args.json_schema)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        attached = [part_for_path(path) for path in args.attach]
    except MediaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append(user_message(args.prompt, args.image, args.audio, args.video, attached))
    with AppSession(args.data_dir) as session:
        try:
            options = session.generation_options(
                **generation_overrides(args), response_format=answer_format
            )
        except OptionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        problem = check_media(args, args.model or session.settings.model_path, attached)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if args.print_prompt:
            return print_prompt(session, args, messages, options, out)
        failed = load_model_and_wait(session, args)
        if failed:
            return failed
        job = session.service.generate(messages, options=options)
        result = AgentResult()
        reading = PrefillLine(sys.stderr)
        notes: list[str] = []
        for event in job.events():
            if not isinstance(event, EngineOutput):
                continue
            if isinstance(event.event, PrefillProgress):
                reading.update(event.event.done, event.event.total, event.event.eta_s)
                continue
            reading.finish()
            if isinstance(event.event, INPUT_EVENTS):
                report_input(event.event, notes)
                continue
            result.add(event.event)
            if args.json:
                continue
            if isinstance(event.event, TextDelta):
                out.write(event.event.text)
                out.flush()
            elif isinstance(event.event, ThinkingDelta):
                sys.stderr.write(event.event.text)
        error = result.error or (
            GenerationError(job.error.kind, job.error.message) if job.error else None
        )
        if args.json:
            body = (
                {"error": {"kind": error.kind, "message": error.message}}
                if error
                else result_json(result)
            )
            if notes:
                body["notes"] = notes
            print(json.dumps(body, ensure_ascii=False), file=out)
            return 1 if error else 0
        out.write("\n")
        if error is not None:
            print(f"error: {error.message}", file=sys.stderr)
            return 1
        return 0


def schema_format(path: Path | None) -> ResponseFormat | None:
    """The `--json-schema` file as a `ResponseFormat` (None without one); `ValueError` with a
    message naming the file when it is not a JSON Schema object."""
    if path is None:
        return None
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the JSON schema {path}: {exc}") from exc
    if not isinstance(schema, dict):
        raise ValueError(f"{path} is not a JSON schema (an object).")
    return ResponseFormat.json_schema(schema, name=Path(path).stem)


def report_input(event: Any, notes: list[str]) -> None:
    """Long inputs on stderr: notes, a transcript's lines and its progress."""
    from app.inputs import InputNote, InputProgress, TranscriptLine, TranscriptStarted

    if isinstance(event, InputNote):
        notes.append(event.text)
        print(f"note: {event.text}", file=sys.stderr)
    elif isinstance(event, TranscriptStarted):
        print(f"{event.kind} of {event.name}:", file=sys.stderr)
    elif isinstance(event, TranscriptLine):
        sys.stderr.write(event.text)
    elif isinstance(event, InputProgress):
        print(f"  {event.name}: {event.message}", file=sys.stderr)


def print_prompt(
    session: AppSession,
    args: argparse.Namespace,
    messages: list[dict[str, Any]],
    options: Any,
    out: TextIO,
) -> int:
    """`--print-prompt`: the prompt from the checkpoint's tokenizer and template (no weights)."""
    from app.inputs.cli import render_prompt_text
    from mlx_model.hub import resolve_checkpoint

    if getattr(args, "remote", None):
        print("error: --print-prompt needs a local model (the server renders its own prompt)",
              file=sys.stderr)  # fmt: skip
        return 2
    model = args.model or session.settings.model_path
    if not model:
        print("error: no model chosen: give --model or choose one in the app", file=sys.stderr)
        return 2
    try:
        prompt, prepared = render_prompt_text(
            messages,
            resolve_checkpoint(str(model)),
            context=args.context or session.settings.context_length,
            max_tokens=options.max_tokens,
            image_budget=options.image_budget,
            enable_thinking=options.enable_thinking,
        )
    except Exception as exc:  # noqa: BLE001 - a bad file or checkpoint: say which, exit 1
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in prepared.notes:
        print(f"note: {note}", file=sys.stderr)
    out.write(prompt if prompt.endswith("\n") else prompt + "\n")
    return 0


def result_json(result: AgentResult) -> dict[str, Any]:
    """The `--json` object: token_ids, text, thinking, tool_calls and stats."""
    stats = dataclasses.asdict(result.stats)
    return {
        "token_ids": list(result.token_ids),
        "text": result.text,
        "thinking": result.thinking,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls
        ],
        "stats": json.loads(json.dumps(stats, default=str)),
    }
