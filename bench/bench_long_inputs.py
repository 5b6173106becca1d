"""Benchmark (not a test): ingest time and token counts for a 300-page PDF and a 1-hour recording.

PDF: `load_document` (pdfium text layer per page, 5 scanned pages rendered at the image
budget), the token count of the whole document, and `fit_or_retrieve` for a 32K budget.
Recording: the one-hour file read clip by clip (decode, resample to 16 kHz, cut at the
checkpoint's clip length) and framed for the model, and the tokens it becomes in one
prompt, with the fit-or-transcribe decision for common contexts. Attaching each (what the
app does on a drop: read or probe, token count or waveform preview, copy into a media
store) is timed too. Inputs are generated once
under `.bench/long_inputs/` (fpdf2 for the PDF, espeak-ng speech for the recording).
Token counts use `--checkpoint`'s tokenizer (a Gemma 4 folder or a cached repo id); without
one, the tiny test checkpoint's (a small BPE vocabulary: more tokens per word than Gemma's).
No peer runs this path (mlx-vlm takes neither documents nor recordings over 30 s).
With `--through-the-model`, a 10-minute recording is also sent in a conversation on the
tiny test model (CPU), once with a context it fits (one prompt) and once with one it does
not (transcribed clip by clip, then answered): the end-to-end path, timed.

    nice -n 10 .venv/bin/python bench/bench_long_inputs.py [--checkpoint PATH] [--through-the-model]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / ".bench" / "long_inputs"


def make_pdf(path: Path, pages: int = 300, scanned: tuple[int, ...] = (10, 70, 130, 190, 250)):
    from tests.app.document_sources import FILLER_WORDS, scanned_page, write_pdf

    if path.exists():
        return path
    rng = random.Random(0)
    content = []
    for number in range(1, pages + 1):
        if number in scanned:
            content.append(scanned_page(f"Scanned page {number}\nSigned and stamped."))
            continue
        lines = [f"Chapter {number // 20 + 1}, page {number}"]
        for _ in range(40):  # about 450 words per page, as a dense manual
            lines.append(" ".join(rng.choices(FILLER_WORDS, k=11)).capitalize() + ".")
        if number == 217:
            lines.append("The torque for the rear axle bolts is 95 newton metres.")
        content.append("\n".join(lines))
    return write_pdf(path, content)


def make_recording(path: Path, seconds: float = 3600.0) -> Path:
    from tests.app.recording_sources import write_spoken_recording

    if not path.exists():
        write_spoken_recording(path, seconds)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a Gemma 4 checkpoint for its tokenizer and configs")
    parser.add_argument(
        "--through-the-model",
        action="store_true",
        help="also send a 10-minute recording through the tiny model, both paths",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)

    from app.documents import DocumentOptions, fit_or_retrieve, load_document, token_counter
    from app.recordings import (
        PromptBudget,
        decide_recording,
        format_clock,
        iter_clips,
        recording_tokens,
    )
    from mlx_model.processing import ProcessorConfig, Tokenizer
    from mlx_model.processing.audio import frame_audio

    if args.checkpoint:
        from mlx_model.hub import resolve_checkpoint

        checkpoint = Path(resolve_checkpoint(args.checkpoint))
        which = f"tokenizer of {args.checkpoint}"
    else:
        from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint

        checkpoint = WORK / "tiny"
        if not (checkpoint / "config.json").exists():
            write_tiny_checkpoint(checkpoint)
        which = "tiny test tokenizer (not Gemma's vocabulary)"
    tokenizer = Tokenizer.from_pretrained(checkpoint)
    config = ProcessorConfig.from_pretrained(checkpoint)
    count = token_counter(tokenizer)

    print(f"Token counts: {which}\n")
    pdf = make_pdf(WORK / "manual-300.pdf")
    start = time.perf_counter()
    doc = load_document(pdf, options=DocumentOptions.from_processor_config(config))
    ingest = time.perf_counter() - start
    start = time.perf_counter()
    tokens = doc.token_count(count)
    counting = time.perf_counter() - start
    start = time.perf_counter()
    selection = fit_or_retrieve([doc], "What torque do the rear axle bolts need?", 32_768, count)
    retrieve = time.perf_counter() - start
    chars = sum(len(c.text) for c in doc.chunks)
    print(f"300-page PDF ({pdf.stat().st_size / 1e6:.1f} MB, {chars:,} characters of text)")
    print(f"  load_document          {ingest:7.2f} s  ({len(doc.chunks)} text pages, "
          f"{len(doc.images)} scanned pages at budget {config.image_budget})")  # fmt: skip
    print(f"  token count            {counting:7.2f} s  -> {tokens:,} tokens "
          f"({sum(i.tokens + 2 for i in doc.images):,} of them page images)")  # fmt: skip
    print(f"  fit_or_retrieve (32K)  {retrieve:7.2f} s  -> {selection.tokens:,} tokens, "
          f"pages {selection.pages.get(doc.name, [])[:8]}...")  # fmt: skip

    recording = make_recording(WORK / "meeting-1h.wav")
    clip_s = config.max_audio_seconds
    start = time.perf_counter()
    clips = 0
    frames = 0
    for clip in iter_clips(recording, clip_seconds=clip_s, sampling_rate=config.sampling_rate):
        features = frame_audio(clip.waveform, config.samples_per_token)
        clips += 1
        frames += features.num_soft_tokens
        last = clip
    preprocess = time.perf_counter() - start
    label_tokens = len(tokenizer.encode(format_clock(last.start_s)))
    audio_tokens = recording_tokens(
        last.end_s,
        clip_seconds=clip_s,
        sampling_rate=config.sampling_rate,
        samples_per_token=config.samples_per_token,
        label_tokens=label_tokens,
    )
    print(f"\n1-hour recording ({recording.stat().st_size / 1e6:.0f} MB WAV, 22.05 kHz mono)")
    print(f"  read + resample + cut + frame  {preprocess:6.2f} s  -> {clips} clips of "
          f"{clip_s:g} s, {frames:,} audio tokens; {audio_tokens:,} prompt tokens with times")  # fmt: skip
    for context in (32_768, 131_072, 262_144):
        decision = decide_recording(audio_tokens, PromptBudget(context, 1_000, 2_048))
        print(f"  context {context // 1024:>3}K: {decision.mode} "
              f"(needs {decision.needed:,}, {decision.available:,} available)")  # fmt: skip
    attach(checkpoint, config, pdf, recording)
    if args.through_the_model:
        through_the_model(make_recording(WORK / "meeting-10min.wav", 600.0))
    return 0


def attach(checkpoint: Path, config, pdf: Path, recording: Path) -> None:
    """Attaching as the app does (`AttachmentIngestor.from_path`) into a throw-away store."""
    import tempfile

    from app.attachments import AttachmentIngestor
    from app.inputs.ingest import token_counter_for
    from app.storage import open_storage

    print("\nAttaching (as a drop in the app: into a new media store)")
    with tempfile.TemporaryDirectory(dir=WORK) as tmp, open_storage(Path(tmp)) as storage:
        ingestor = AttachmentIngestor(storage.media)
        ingestor.count_tokens, ingestor.processor_config = token_counter_for(checkpoint), config
        for path in (pdf, recording):
            start = time.perf_counter()
            attachment = ingestor.from_path(path)
            took = time.perf_counter() - start
            shown = attachment.size_label or f"{attachment.duration_s:,.0f} s"
            extra = f", {attachment.tokens:,} tokens" if attachment.tokens else ""
            print(f"  {path.name:<18} {took:6.2f} s  -> {attachment.kind}: {shown}{extra}")


def through_the_model(recording: Path) -> None:
    """The recording in a conversation on the tiny model: one prompt, then transcribed."""
    import tempfile

    from app.session import AppSession
    from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint

    tiny = WORK / "tiny"
    if not (tiny / "config.json").exists():
        write_tiny_checkpoint(tiny)
    print("\n10-minute recording in a conversation on the tiny test model (CPU)")
    for context in (32_768, 8_192):
        with tempfile.TemporaryDirectory(dir=WORK) as tmp, AppSession(Path(tmp)) as session:
            session.settings_store.update(max_tokens=8, seed=0, temperature=0.0)
            job = session.load_local(str(tiny), context_length=context)
            job.wait()
            if job.error is not None:
                raise SystemExit(job.error.message)
            conversation = session.controller.new_conversation()
            attachment = session.ingestor.from_path(recording)
            start = time.perf_counter()
            turn = session.controller.send(conversation.id, "What was decided?", [attachment])
            turn.wait()
            took = time.perf_counter() - start
            messages = session.storage.conversations.messages(conversation.id)
            answer = messages[-1]
            transcript = next(
                (m.stats["transcript"] for m in messages if "transcript" in (m.stats or {})), None
            )
            how = (
                f"transcribed ({len(transcript['segments'])} clips), then answered"
                if transcript
                else "one prompt"
            )
            print(f"  context {context // 1024:>2}K: {how}; {turn.status} in {took:.1f} s, "
                  f"answer prefilled {answer.stats.get('prefilled_tokens', 0):,} tokens")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
