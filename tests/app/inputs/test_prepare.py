"""Preparing long inputs against the tiny checkpoint's tokenizer and processor config: what
goes into the prompt for a long recording, a long video and documents, when it fits and
when it does not (helper generations are a stand-in here; the engine runs them in
test_long_inputs_in_conversations.py)."""

from __future__ import annotations

import re

import pytest

from app.inputs import (
    InputNote,
    InputProgress,
    ModelFacts,
    TranscriptFinished,
    TranscriptLine,
    TranscriptStarted,
    needs_preparation,
    prepare_messages,
)
from app.recordings import format_clock


@pytest.fixture(scope="module")
def facts_for(tiny_checkpoint):
    from mlx_model.processing import Processor

    processor = Processor.from_pretrained(tiny_checkpoint)
    return lambda context: ModelFacts.from_processor(processor, context)


def ask(part: dict, question: str = "What was decided?") -> list[dict]:
    return [{"role": "user", "content": [part, {"type": "text", "text": question}]}]


def recording(path, sha: str = "") -> dict:
    part = {"type": "audio", "path": str(path), "name": "meeting.wav"}
    return {**part, "sha256": sha} if sha else part


class Clips:
    """A stand-in for the model's helper turns: the k-th turn says `words k`."""

    def __init__(self, text: str = "words {k}", cancel_after: int | None = None) -> None:
        self.calls: list[list[dict]] = []
        self.text = text
        self.cancel_after = cancel_after

    def __call__(self, chat: list[dict], max_tokens: int) -> str:
        self.calls.append(chat)
        return self.text.format(k=len(self.calls))

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.calls) >= self.cancel_after


def nothing(chat, max_tokens):  # a preparation that must not generate
    raise AssertionError("no helper generation expected")


def test_short_media_need_no_preparation(facts_for, tmp_path):
    from tests.ui.conftest import write_tone

    short = ask({"type": "audio", "path": str(write_tone(tmp_path / "hi.wav", 2.0))})

    assert not needs_preparation(short, facts_for(4096))
    assert prepare_messages(short, facts_for(4096), generate=nothing).messages == short


def test_a_ten_minute_recording_that_fits_goes_in_as_clips_after_their_start_times(
    spoken_recording, facts_for
):
    facts = facts_for(32_768)
    prepared = prepare_messages(ask(recording(spoken_recording)), facts, generate=nothing)

    out = facts.processor.apply_chat_template(prepared.messages, return_prompt=True)
    assert out["input_features"].shape[0] == 20  # twenty 30 s clips, one prompt
    prompt = out["prompt"]
    boa = facts.processor.tokenizer.special.boa_token
    positions = [prompt.index(f"{format_clock(30 * k)}{boa}") for k in range(20)]
    assert positions == sorted(positions)
    assert "Recording “meeting.wav”, 10 min" in prompt
    assert prepared.notes == []


def test_a_recording_that_does_not_fit_is_transcribed_clip_by_clip(spoken_recording, facts_for):
    model = Clips()
    events = []

    prepared = prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=model,
        emit=events.append, max_tokens=64,
    )  # fmt: skip

    assert len(model.calls) == 20
    [started] = [e for e in events if isinstance(e, TranscriptStarted)]
    assert (started.name, started.sha256, started.total) == ("meeting.wav", "abc", 20)
    lines = [e.text for e in events if isinstance(e, TranscriptLine)]
    assert lines[0] == "[00:00] words 1\n\n" and lines[-1] == "[09:30] words 20\n\n"
    progress = [e.message for e in events if isinstance(e, InputProgress)]
    assert progress[0] == "clip 0 of 20" and progress[-1] == "clip 20 of 20"
    assert re.fullmatch(r"clip 10 of 20, .* left", progress[10])
    [finished] = [e for e in events if isinstance(e, TranscriptFinished)]
    assert finished.transcript["complete"] and len(finished.transcript["segments"]) == 20
    assert finished.transcript["segments"][3] == {
        "start_s": 90.0,
        "end_s": 120.0,
        "text": "words 4",
    }
    text = prepared.messages[0]["content"][0]["text"]
    assert "[09:30] words 20" in text and text.endswith("What was decided?")
    assert "transcribed clip by clip (20 clips)" in prepared.notes[0]
    assert isinstance(events[0], InputNote)


def test_cancel_mid_way_keeps_what_was_transcribed_and_the_next_turn_continues_it(
    spoken_recording, facts_for
):
    model = Clips(cancel_after=7)
    events = []
    prepared = prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=model,
        emit=events.append, cancelled=model.cancelled,
    )  # fmt: skip

    assert prepared.cancelled and len(model.calls) == 7
    [kept] = [e.transcript for e in events if isinstance(e, TranscriptFinished)]
    assert not kept["complete"] and len(kept["segments"]) == 7
    assert kept["segments"][-1]["start_s"] == 180.0

    resumed = Clips(text="more {k}")
    events = []
    prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=resumed,
        emit=events.append, transcripts={"abc": kept},
    )  # fmt: skip
    assert len(resumed.calls) == 13  # only the clips not transcribed yet
    [started] = [e for e in events if isinstance(e, TranscriptStarted)]
    assert started.resumed == 7
    lines = [e.text for e in events if isinstance(e, TranscriptLine)]
    assert lines[6].strip() == "[03:00] words 7" and lines[7].strip() == "[03:30] more 1"
    assert len(lines) == 20
    [done] = [e.transcript for e in events if isinstance(e, TranscriptFinished)]
    assert done["complete"]


def test_a_complete_transcript_is_reused_and_no_clip_is_transcribed_again(
    spoken_recording, facts_for
):
    model = Clips()
    events = []
    prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=model,
        emit=events.append,
    )  # fmt: skip
    [done] = [e.transcript for e in events if isinstance(e, TranscriptFinished)]

    again = prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=nothing,
        transcripts={"abc": done},
    )  # fmt: skip

    assert "[04:30] words 10" in again.messages[0]["content"][0]["text"]


def test_a_transcript_whose_message_was_superseded_is_shown_again_without_transcribing(
    spoken_recording, facts_for
):
    model = Clips()
    first = []
    prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=model,
        emit=first.append,
    )  # fmt: skip
    [done] = [e.transcript for e in first if isinstance(e, TranscriptFinished)]
    events = []

    prepare_messages(
        ask(recording(spoken_recording, "abc")), facts_for(8192), generate=nothing,
        emit=events.append, transcripts={"abc": {**done, "shown": False}},  # e.g. Regenerate
    )  # fmt: skip

    assert [type(e) for e in events if not isinstance(e, InputNote)] == [
        TranscriptStarted, *[TranscriptLine] * 20, TranscriptFinished,
    ]  # fmt: skip


def test_a_transcript_longer_than_the_context_is_read_part_by_part(spoken_recording, facts_for):
    facts = facts_for(2048)
    talk = Clips(text="clip {k} " + "we talked about the export and the login page " * 20)
    prepared = prepare_messages(
        ask(recording(spoken_recording)), facts, generate=talk, max_tokens=32,
    )  # fmt: skip

    maps = [c[0]["content"] for c in talk.calls[20:]]
    assert maps and all(isinstance(m, str) and "Task: What was decided?" in m for m in maps)
    assert all(facts.count(m) + 32 <= facts.context_limit for m in maps)
    assert re.search(r"part 1 of \d+ \(00:00–", maps[0])
    text = prepared.messages[0]["content"][0]["text"]
    assert "The partial answers, in order" in text and "\nPart 1" in text
    assert facts.count(text) <= facts.context_limit
    assert "answers combined" in prepared.notes[-1]


def test_a_video_too_long_for_its_own_sampling_gets_fewer_frames_and_says_so(
    five_minute_video, facts_for
):
    facts = facts_for(12_000)
    part = {"type": "video", "path": str(five_minute_video), "name": "demo.mkv"}
    prepared = prepare_messages(ask(part), facts, generate=nothing, max_tokens=64)

    out = facts.processor.apply_chat_template(prepared.messages)
    frames = out["num_frames_per_video"].tolist()
    assert len(frames) == 5 and frames[0] < facts.config.video_sampling.num_frames
    assert f"{frames[0]} frames per segment instead of 32" in prepared.notes[0]
    assert out["input_ids"].shape[1] <= 12_000


def test_a_video_that_does_not_fit_even_so_is_described_segment_by_segment(
    five_minute_video, facts_for
):
    model = Clips(text="description {k}")
    events = []
    part = {"type": "video", "path": str(five_minute_video), "name": "demo.mkv", "sha256": "v"}
    prepared = prepare_messages(
        ask(part), facts_for(4096), generate=model, emit=events.append, max_tokens=64
    )

    assert len(model.calls) == 5
    assert all(c[0]["content"][0]["type"] == "video" for c in model.calls)
    [started] = [e for e in events if isinstance(e, TranscriptStarted)]
    assert (started.kind, started.total) == ("description", 5)
    assert [e.message for e in events if isinstance(e, InputProgress)][-1] == "segment 5 of 5"
    text = prepared.messages[0]["content"][0]["text"]
    assert "[01:00] description 2" in text and "described segment by segment" in prepared.notes[0]


def test_documents_that_fit_go_in_whole(tmp_path, facts_for):
    from tests.app.document_sources import write_docx

    doc = write_docx(tmp_path / "plan.docx", ["Budget", "The budget is 12,000 euros."])
    part = {"type": "document", "path": str(doc), "name": "plan.docx"}
    prepared = prepare_messages(ask(part, "How much?"), facts_for(4096), generate=nothing)

    text = prepared.messages[0]["content"][0]["text"]
    assert text.startswith("=== plan.docx (Word document")
    assert "The budget is 12,000 euros." in text and text.endswith("How much?")
    assert prepared.notes == []


def test_a_long_pdf_is_retrieved_around_the_question_and_the_note_names_the_pages(
    long_pdf, facts_for
):
    path, page, fact = long_pdf
    facts = facts_for(4096)
    part = {"type": "document", "path": str(path), "name": "manual.pdf"}
    prepared = prepare_messages(
        ask(part, "What is the vault access code for Nightingale?"), facts, generate=nothing,
        max_tokens=256,
    )  # fmt: skip

    text = prepared.messages[0]["content"][0]["text"]
    assert fact in text and f"--- page {page} ---" in text
    assert facts.count(text) < 4096 - 256
    [note] = prepared.notes
    assert "manual.pdf: pages" in note and page in pages_named(note)


def pages_named(note: str) -> set[int]:
    """The page numbers a note's `pages 4, 17–19` names."""
    found: set[int] = set()
    for a, b in re.findall(r"(\d+)(?:–(\d+))?", note.split("pages", 1)[1]):
        found.update(range(int(a), int(b or a) + 1))
    return found
