"""Record mode: a meeting of any length from the microphone straight to disk, then attached.

`MeetingRecording` wraps `app.capture.disk_recorder.DiskRecorder` behind the callbacks of
`app.capture.recording.Recording` (`on_level`, `on_finished`, `on_failed`): the WAV grows
in the data folder's `recordings/` as the meeting goes on (a crash leaves a playable file;
`recover_recordings` repairs such files when the app starts), and `stop` ingests it as an
audio attachment, which then follows the long-recording path (one prompt or a transcript).
A cancelled recording is not attached but stays on disk: nothing recorded is thrown away.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.attachments import AttachmentIngestor
from app.capture.disk_recorder import DiskRecorder, repair_wav
from app.capture.errors import CaptureError, CaptureUnavailable
from app.capture.recording import Recording, meter

RECORDINGS_DIRNAME = "recordings"
NO_LIMIT_S = float("inf")


def recording_path(folder: Path, clock: Any = time.localtime) -> Path:
    """`recordings/Meeting 2026-05-28 14.30.05.wav` (a new name each time)."""
    stamp = time.strftime("%Y-%m-%d %H.%M.%S", clock())
    path = folder / f"Meeting {stamp}.wav"
    n = 2
    while path.exists():
        path = folder / f"Meeting {stamp} ({n}).wav"
        n += 1
    return path


class MeetingRecording(Recording):
    """`start`, then `stop` (attach it) or `cancel` (keep the file, attach nothing)."""

    def __init__(
        self,
        ingestor: AttachmentIngestor,
        folder: Path,
        source: Any = None,
        *,
        device: str | None = None,
        **callbacks: Any,
    ) -> None:
        super().__init__(ingestor, NO_LIMIT_S, **callbacks)
        self.path = recording_path(Path(folder))
        factory = (lambda: source) if source is not None else None
        self.recorder = DiskRecorder(
            self.path,
            factory,
            device=device or None,
            on_level=lambda event: self.on_level(meter(event.dbfs)),
            on_error=lambda error: self.failed(str(error)),
        )

    @property
    def elapsed_s(self) -> float:
        return self.recorder.elapsed_s

    def start(self) -> None:
        try:
            self.recorder.start()
        except CaptureUnavailable as exc:
            self.failed(exc.reason)
            return
        except CaptureError as exc:
            self.failed(str(exc))
            return
        self.device_name = self.recorder.device_name

    def stop(self) -> None:
        def produce() -> Any:
            files = self.recorder.stop()
            if not files.paths or files.duration_s <= 0:
                raise CaptureError("Nothing was recorded: no sound reached the app.")
            return files.paths[0]  # a path: ingested as audio of any length

        self.finish_with(produce)

    def cancel(self) -> None:
        self.recorder.stop()
        self.finished(None)


def recover_recordings(folder: Path) -> list[Path]:
    """Repair recordings a killed app left with a stale header; returns those it repaired."""
    repaired = []
    for path in sorted(Path(folder).glob("*.wav")):
        try:
            with open(path, "rb") as f:
                header = f.read(44)
            counted = int.from_bytes(header[40:44], "little") if len(header) == 44 else -1
            if counted != path.stat().st_size - 44 and repair_wav(path) > 0:
                repaired.append(path)
        except (OSError, CaptureError):
            continue
    return repaired
