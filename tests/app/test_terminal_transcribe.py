"""`gemma-desk transcribe`: a recording of any length, clip by clip on the tiny model, as
timestamped txt, Markdown, SRT or JSON."""

from __future__ import annotations

import json

import pytest

from app.cli import main


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    from tests.app.recording_sources import write_tone_video

    # A video's sound track counts as a recording: 65 s, three clips.
    return write_tone_video(tmp_path_factory.mktemp("rec") / "standup.mkv", 65.0, fps=1)


def transcribe(tiny_checkpoint, tmp_path, recording, *flags: str) -> list[str]:
    return ["transcribe", str(recording), "--data-dir", str(tmp_path / "data"),
            "--model", str(tiny_checkpoint), "--max-tokens", "1", *flags]  # fmt: skip


def test_a_recording_becomes_one_timestamped_segment_per_clip(
    tiny_checkpoint, tmp_path, meeting, capsys
):
    assert main(transcribe(tiny_checkpoint, tmp_path, meeting, "--format", "json")) == 0
    captured = capsys.readouterr()
    transcript = json.loads(captured.out)
    assert transcript["name"] == "standup.mkv" and transcript["complete"]
    spans = [(s["start_s"], s["end_s"]) for s in transcript["segments"]]
    assert spans == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.0)]
    assert "standup.mkv: clip 3 of 3" in captured.err


def test_the_transcript_can_be_written_as_srt(tiny_checkpoint, tmp_path, meeting, capsys):
    srt = tmp_path / "standup.srt"
    flags = ("--format", "srt", "--output", str(srt))
    assert main([*transcribe(tiny_checkpoint, tmp_path, meeting), *flags]) == 0
    cues = srt.read_text().strip().split("\n\n")
    spans = ["00:00:00,000 --> 00:00:30,000", "00:00:30,000 --> 00:01:00,000",
             "00:01:00,000 --> 00:01:05,000"]  # fmt: skip
    assert [cue.splitlines()[1] for cue in cues] == [s for s in spans if s in srt.read_text()]
    assert cues and cues[0].startswith("1\n") and f"wrote {srt}" in capsys.readouterr().err


def test_a_file_that_is_not_a_recording_is_refused(tiny_checkpoint, tmp_path, capsys):
    missing = tmp_path / "nothing.wav"
    assert main(transcribe(tiny_checkpoint, tmp_path, missing)) == 2
    assert "nothing.wav" in capsys.readouterr().err
