"""Transcription driver: timestamps, progress with time left, cancel keeping what was done;
exports; map-reduce over a transcript too long for one prompt."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from app.recordings import (
    Cancelled,
    Transcript,
    TranscriptSegment,
    clip_spans,
    export_transcript,
    iter_clips,
    map_reduce,
    transcribe_clips,
    transcript_parts,
)
from tests.app.document_sources import WordCounter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_transcribing_a_long_recording_timestamps_every_clip(spoken_recording):
    clock = FakeClock()
    progress = []
    segments = []

    def transcribe(clip):
        clock.now += 6.0  # each clip takes 6 s to transcribe
        return f"words from {clip.start_s:.0f} s"

    transcript = transcribe_clips(
        iter_clips(spoken_recording, clip_seconds=30.0),
        transcribe,
        name="meeting.wav",
        total=len(clip_spans(600.0, 30.0)),
        on_segment=segments.append,
        on_progress=progress.append,
        clock=clock,
    )

    assert transcript.complete and len(transcript.segments) == 20 == len(segments)
    assert [(s.start_s, s.end_s) for s in transcript.segments[:2]] == [(0.0, 30.0), (30.0, 60.0)]
    assert transcript.segments[19].text == "words from 570 s"
    assert progress[0].message == "clip 1 of 20, 1 min 54 s left"
    assert progress[9].message == "clip 10 of 20, 1 min left"
    assert progress[-1].message == "clip 20 of 20"
    assert transcript.text().splitlines()[1] == "[00:30] words from 30 s"


def test_cancel_mid_way_keeps_what_was_transcribed(spoken_recording):
    cancel = threading.Event()

    def stop_after_seven(progress):
        if progress.done == 7:
            cancel.set()

    transcript = transcribe_clips(
        iter_clips(spoken_recording, clip_seconds=30.0),
        lambda clip: "text",
        name="meeting.wav",
        total=20,
        on_progress=stop_after_seven,
        cancel=cancel,
    )

    assert not transcript.complete
    assert len(transcript.segments) == 7 and transcript.covered_s == 210.0


def _clips(count: int) -> list:
    from app.recordings import AudioClip

    return [AudioClip(i, 30.0 * i, np.zeros(480_000, np.float32), 16_000) for i in range(count)]


def test_a_clip_stopped_mid_way_is_left_out_and_the_transcript_is_incomplete():
    from app.recordings import StopTranscription

    def transcribe(clip):
        if clip.index == 4:
            raise StopTranscription  # the user cancelled while clip 5 was being transcribed
        return f"clip {clip.index}"

    transcript = transcribe_clips(_clips(10), transcribe, name="talk.wav", total=10)

    assert not transcript.complete
    assert [s.text for s in transcript.segments] == ["clip 0", "clip 1", "clip 2", "clip 3"]


def test_a_resumed_transcript_skips_the_clips_it_has_and_counts_them_as_done():
    earlier = transcribe_clips(_clips(3), lambda clip: f"old {clip.index}", name="talk.wav")
    progress = []

    transcript = transcribe_clips(
        _clips(10), lambda clip: f"new {clip.index}", name="talk.wav", total=10,
        on_progress=progress.append, resume=earlier,
    )  # fmt: skip

    assert transcript.complete
    assert [s.text for s in transcript.segments][2:5] == ["old 2", "new 3", "new 4"]
    assert [s.index for s in transcript.segments] == list(range(10))
    assert progress[0].done == 4 and progress[0].message.startswith("clip 4 of 10")


def test_tiny_model_transcribes_real_clips_through_the_engine(spoken_recording, tiny_checkpoint):
    from app.recordings import transcription_messages
    from mlx_model.engine import Engine

    engine = Engine.load(tiny_checkpoint, apply_limits=False, context_length=2048)
    clips = iter_clips(spoken_recording, clip_seconds=engine.processor.config.max_audio_seconds)
    first_three = (clip for clip, _ in zip(clips, range(3), strict=False))

    transcript = transcribe_clips(
        first_three,
        lambda clip: (
            engine.generate(transcription_messages(clip), max_tokens=3, temperature=0.0).text
        ),
        name="meeting.wav",
    )

    assert [s.start_s for s in transcript.segments] == [0.0, 30.0, 60.0]
    assert transcript.complete


SAMPLE = Transcript(
    name="standup.wav",
    duration_s=3725.0,
    complete=True,
    segments=[
        TranscriptSegment(0, 0.0, 30.0, "Hello and welcome."),
        TranscriptSegment(1, 30.0, 60.0, ""),
        TranscriptSegment(2, 3690.0, 3720.0, "Thanks, bye."),
    ],
)


def test_srt_export_numbers_cues_and_skips_silence():
    assert export_transcript(SAMPLE, "srt") == (
        "1\n00:00:00,000 --> 00:00:30,000\nHello and welcome.\n\n"
        "2\n01:01:30,000 --> 01:02:00,000\nThanks, bye.\n"
    )


def test_text_and_markdown_exports_carry_timestamps():
    assert (
        export_transcript(SAMPLE, "txt") == "[00:00] Hello and welcome.\n[1:01:30] Thanks, bye.\n"
    )
    md = export_transcript(SAMPLE, "md")
    assert md.startswith("# Transcript: standup.wav\n\n*1 h 2 min*\n")
    assert "**1:01:30** Thanks, bye." in md


def test_json_export_round_trips():
    data = json.loads(export_transcript(SAMPLE, "json"))

    assert Transcript.from_dict(data) == SAMPLE


def test_unknown_export_format_is_refused():
    with pytest.raises(ValueError, match="use one of txt, md, srt, json"):
        export_transcript(SAMPLE, "docx")


def _long_transcript(n: int = 120) -> Transcript:
    return Transcript(
        name="all-hands.wav",
        complete=True,
        segments=[
            TranscriptSegment(i, i * 30.0, i * 30.0 + 30, f"item {i} " + "talk " * 40)
            for i in range(n)
        ],
    )


def test_transcript_parts_fit_the_budget_and_cover_every_segment():
    count = WordCounter()
    parts = transcript_parts(_long_transcript(), 500, count)

    assert len(parts) > 1 and all(count(p.text) <= 500 for p in parts)
    joined = "\n".join(p.text for p in parts)
    assert all(f"item {i} " in joined for i in range(120))
    assert parts[0].start_s == 0.0 and parts[-1].end_s == 3600.0


def test_map_reduce_keeps_every_prompt_within_the_budget_and_combines_all_parts():
    count = WordCounter()
    budget = 700
    parts = transcript_parts(_long_transcript(), budget - 150, count)
    prompts: list[str] = []

    def generate(prompt: str) -> str:
        prompts.append(prompt)
        if prompt.startswith("The task below"):
            found = sorted({int(w) for w in prompt.split() if w.isdigit() and len(w) < 4})
            return "items " + " ".join(map(str, found))
        first = prompt.split("] item ")[1].split()[0]
        return f"{first} " + "summary words " * 30

    answer = map_reduce(parts, "List the items.", generate, count=count, budget=budget)

    assert all(count(p) <= budget for p in prompts)
    assert sum(p.startswith("The task below") for p in prompts) >= 2  # more than one round
    assert answer.startswith("items")


def test_answers_are_combined_only_until_they_fit_when_asked():
    from app.recordings import answer_blocks, reduce_answers

    count = WordCounter()
    answers = [f"answer {i} " + "words " * 40 for i in range(8)]

    def generate(prompt: str) -> str:
        return "combined " + "words " * 10

    kept = reduce_answers(answers, "Summarize.", generate, count=count, budget=400, fits=300)

    assert 1 < len(kept) < len(answers)
    assert count(answer_blocks(kept)) <= 300


def test_map_reduce_cancel_returns_partial_answers():
    cancel = threading.Event()
    parts = transcript_parts(_long_transcript(20), 200, WordCounter())

    def generate(prompt: str) -> str:
        cancel.set()
        return "partial"

    with pytest.raises(Cancelled) as caught:
        map_reduce(parts, "Summarize.", generate, count=WordCounter(), budget=400, cancel=cancel)
    assert caught.value.partial == ["partial"]
