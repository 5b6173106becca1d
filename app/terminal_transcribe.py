"""`gemma-desk transcribe RECORDING`: a timestamped transcript of a recording of any length.

The recording (any audio file, or a video's sound track) is read clip by clip at the
checkpoint's clip length and each clip transcribed by the model (one short greedy turn,
as the app does when a recording does not fit the context); progress goes to stderr. The
transcript is printed (or written to `--output`) as txt, md, srt or json. Ctrl-C stops after
the running clip and still writes what was transcribed (exit status 130).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from app.cli_args import add_session_arguments, load_model_and_wait
from app.inputs.prepare import TRANSCRIBE_MAX_TOKENS
from app.recordings import EXPORT_FORMATS, export_transcript
from app.session import AppSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", type=Path, help="an audio file or a video with sound")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="txt", help="default: txt")
    parser.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    parser.add_argument(
        "--max-tokens", type=int, default=TRANSCRIBE_MAX_TOKENS,
        help=f"the most tokens one clip's transcript may take (default {TRANSCRIBE_MAX_TOKENS})",
    )  # fmt: skip
    add_session_arguments(parser)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from app.recordings import probe_recording
    from mlx_model.processing.errors import MediaError

    out = out or sys.stdout
    try:
        duration = probe_recording(args.recording)
    except MediaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with AppSession(args.data_dir) as session:
        failed = load_model_and_wait(session, args)
        if failed:
            return failed
        stop = threading.Event()
        job = session.service.call(
            lambda engine: transcribe_file(
                engine, args.recording, duration, stop, sys.stderr, max_tokens=args.max_tokens
            )
        )
        interrupted = False
        while not job.done:
            try:
                job.wait(0.2)
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                print("\nstopping after this clip…", file=sys.stderr)
        if job.error is not None:
            print(f"error: {job.error.message}", file=sys.stderr)
            return 1
        text = export_transcript(job.result, args.format)
        if args.output is not None:
            args.output.write_text(text, encoding="utf-8")
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            out.write(text)
        return 130 if interrupted else 0


def transcribe_file(
    engine: Any,
    path: Path,
    duration: float | None,
    stop: threading.Event,
    log: TextIO,
    *,
    max_tokens: int = TRANSCRIBE_MAX_TOKENS,
) -> Any:
    """The transcript of `path` made with `engine` (on the engine's thread)."""
    from app.inputs.facts import facts_of
    from app.inputs.run import engine_text
    from app.recordings import clip_spans, iter_clips, transcribe_clips, transcription_messages

    config = facts_of(engine).config
    clip_seconds = config.max_audio_seconds
    total = len(clip_spans(duration, clip_seconds)) if duration else None

    def transcribe(clip: Any) -> str:
        return engine_text(engine, transcription_messages(clip), max_tokens)

    return transcribe_clips(
        iter_clips(path, clip_seconds=clip_seconds, sampling_rate=config.sampling_rate),
        transcribe,
        name=path.name,
        total=total,
        duration_s=duration,
        on_progress=lambda p: print(f"{path.name}: {p.message}", file=log, flush=True),
        cancel=stop,
    )
