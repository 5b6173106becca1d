"""Long recordings in a conversation on the tiny model: one prompt when the plan's context
allows, else a transcript streamed into its own stored message (searchable, reused, resumed
after a cancel), then the answer over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.conversation_controller import InputProgressed
from app.session import AppSession
from tests.doubles import script_turns, scripted_factory

TIMEOUT = 300


@pytest.fixture(scope="module")
def short_meeting(tmp_path_factory) -> Path:
    """65 s of speech: three clips (the last 5 s long)."""
    from tests.app.recording_sources import write_spoken_recording

    return write_spoken_recording(tmp_path_factory.mktemp("meeting") / "standup.wav", 65.0)


@pytest.fixture
def session_with(tmp_path, tiny_checkpoint):
    """An AppSession over the scripted tiny model, loaded with the given context."""
    opened = []

    def build(context: int) -> AppSession:
        session = AppSession(tmp_path / f"data{len(opened)}", engine_factory=scripted_factory())
        opened.append(session)
        session.settings_store.update(max_tokens=8, seed=0)
        job = session.load_local(str(tiny_checkpoint), context_length=context)
        job.wait(TIMEOUT)
        assert job.error is None
        return session

    yield build
    for session in opened:
        session.close()


def send(session: AppSession, path: Path, text: str = "What was decided?"):
    conversation = session.controller.new_conversation()
    attachment = session.ingestor.from_path(path)
    turn = session.controller.send(conversation.id, text, [attachment])
    return conversation, attachment, turn


def stored(session: AppSession, conversation_id: int):
    return session.storage.conversations.messages(conversation_id)


def test_a_recording_that_fits_goes_into_one_prompt(session_with, short_meeting):
    session = session_with(4096)
    conversation, _, turn = send(session, short_meeting)
    assert turn.wait(TIMEOUT) and turn.status == "done"

    user, answer = stored(session, conversation.id)
    assert answer.role == "assistant" and "transcript" not in (answer.stats or {})
    assert answer.stats["prefilled_tokens"] > 2 * 750  # three clips of audio soft tokens
    assert "input_notes" not in answer.stats


def test_a_recording_that_does_not_fit_is_transcribed_into_the_conversation_then_answered(
    session_with, short_meeting
):
    session = session_with(1536)
    script_turns(session.service, ["alpha bravo", "charlie", "delta\necho", "Done."])
    progress = []
    session.controller.subscribe(
        lambda e: (
            progress.append(e.progress.message)
            if isinstance(e, InputProgressed) and e.progress
            else None
        )
    )
    conversation, attachment, turn = send(session, short_meeting)
    assert turn.wait(TIMEOUT) and turn.status == "done"

    user, transcript, answer = stored(session, conversation.id)
    assert transcript.text.split() and transcript.text.strip().split("\n\n") == [
        "[00:00] alpha bravo", "[00:30] charlie", "[01:00] delta echo",
    ]  # fmt: skip
    kept = transcript.stats["transcript"]
    assert kept["complete"] and kept["sha256"] == attachment.sha256
    assert [s["end_s"] for s in kept["segments"]] == [30.0, 60.0, 65.0]
    assert (
        answer.text == "Done."
        and "transcribed clip by clip (3 clips)" in (answer.stats["input_notes"][0])
    )
    assert progress[0] == "clip 0 of 3" and progress[-1] == "clip 3 of 3"
    hits = session.storage.conversations.search("charlie")
    assert [h.message_id for h in hits] == [transcript.id]

    # The next turn reads the stored transcript where the recording was: nothing is transcribed again.
    script_turns(session.service, ["Again."])
    chat = session.controller.render(conversation.id)
    assert [m["role"] for m in chat] == ["user", "assistant"]  # the transcript is no model turn
    follow = session.controller.send(conversation.id, "And who fixes the crash?")
    assert follow.wait(TIMEOUT) and follow.status == "done"
    assert stored(session, conversation.id)[-1].text == "Again."
    assert len(stored(session, conversation.id)) == 5


def test_cancel_mid_way_keeps_what_was_transcribed(session_with, spoken_recording):
    session = session_with(4096)  # ten minutes do not fit: twenty clips to transcribe
    progressed = []

    def cancel_at_three(event):
        if isinstance(event, InputProgressed) and event.progress:
            progressed.append(event.progress)
            if event.progress.done == 3:
                session.cancel()

    session.controller.subscribe(cancel_at_three)
    conversation, _, turn = send(session, spoken_recording)
    assert turn.wait(TIMEOUT) and turn.status == "cancelled"

    user, transcript = stored(session, conversation.id)
    kept = transcript.stats["transcript"]
    assert progressed[-1].total == 20 and not kept["complete"]
    assert [s["start_s"] for s in kept["segments"]] == [0.0, 30.0, 60.0]
    assert [line.split("]")[0] for line in transcript.text.strip().split("\n\n")] == [
        "[00:00", "[00:30", "[01:00",
    ]  # fmt: skip
    assert transcript.status == "done"  # what was transcribed stays, as a finished message
