"""What the widgets see of the application: view models and the `Backend` interface they call.

Widgets never import `app/` directly: the app's plain view data (`MessageView`,
`ModelStatus`, `SettingField`, ...) reaches them through this module. They hold a
`Backend` (a QObject): plain method calls that return at once (nothing here waits on the
model) and Qt signals that carry what happens later. `ui.app_backend.AppBackend`
implements it over `app.session.AppSession`; `ui.memory_backend.MemoryBackend` is an
in-memory one for previews, screenshots and tests of the widgets alone. Keeping this seam small keeps every adaptation to `app/` local.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.models.offer import DownloadOffer
from app.options import DEFAULT_IMAGE_BUDGET, IMAGE_BUDGETS
from app.settings_form import SettingField
from app.views import ConversationSummary, MessageView, ModelStatus, RunStats, ToolCardView

__all__ = [
    "DEFAULT_VISION_BUDGET", "VISION_BUDGETS", "AttachmentRejected", "AttachmentView", "Backend",
    "CaptureSession", "ConversationSummary", "DownloadOffer", "MessageView", "ModelStatus",
    "RunStats", "SettingField", "ToolCardView",
]  # fmt: skip
VISION_BUDGETS = IMAGE_BUDGETS
DEFAULT_VISION_BUDGET = DEFAULT_IMAGE_BUDGET


@dataclass
class AttachmentView:
    """One validated attachment as the UI shows it; `source` is the app's own object."""

    kind: str  # "image" | "audio" | "video"
    name: str
    path: Path | None = None
    size_bytes: int = 0
    duration_s: float | None = None
    width: int = 0
    height: int = 0
    thumbnail: QImage | None = None  # images (and a video's poster frame)
    waveform: list[float] = field(default_factory=list)  # audio peaks in 0..1
    frames: list[QImage] = field(default_factory=list)  # video frame strip
    source: Any = None


class AttachmentRejected(Exception):
    """A file the app refused; `reason` is a sentence for the user naming the limit."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class CaptureSession(QObject):
    """A microphone or camera recording in progress; signals arrive on the UI thread."""

    level = Signal(float)  # microphone input level, 0..1
    frame = Signal(QImage)  # camera preview frame
    remaining = Signal(float)  # seconds left before the limit stops the recording
    finished = Signal(object)  # AttachmentView, or None when cancelled
    failed = Signal(str)  # a sentence for the user

    limit_s: float = 30.0

    def start(self) -> None:
        """Start recording (for a camera: start the preview; `record` starts the clip)."""

    def record(self) -> None:
        """Camera only: start recording the clip (the preview keeps running)."""

    def stop(self) -> None:
        """Stop and turn the recording into an attachment (emits `finished`)."""

    def cancel(self) -> None:
        """Stop and throw the recording away (emits `finished(None)`)."""


class Backend(QObject):
    """The application as the widgets use it. Every method returns promptly."""

    conversations_changed = Signal()
    conversation_reset = Signal(str)  # conversation id: reload all its messages
    message_added = Signal(str, object)  # conversation id, MessageView
    delta = Signal(str, str, str, str)  # conversation id, message id, "text"|"thinking", text
    tool_event = Signal(str, str, object)  # conversation id, message id, ToolCardView
    message_finished = Signal(str, str, object)  # conversation id, message id, MessageView
    generating_changed = Signal(str, bool)  # conversation id, generating
    model_status_changed = Signal(object)  # ModelStatus
    stats_changed = Signal(object)  # RunStats
    transcript_ready = Signal(str)  # dictation result for the composer
    notice = Signal(str)  # a sentence for the status line (errors included)
    download_progress = Signal(int, int, str)  # done bytes, total bytes, what is happening
    download_finished = Signal(str, str)  # model folder ("" on failure), error message

    # conversations
    def conversations(self, query: str = "") -> list[ConversationSummary]:
        raise NotImplementedError

    def new_conversation(self) -> str:
        raise NotImplementedError

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        raise NotImplementedError

    def delete_conversation(self, conversation_id: str) -> None:
        raise NotImplementedError

    def messages(self, conversation_id: str) -> list[MessageView]:
        raise NotImplementedError

    # generation
    def send(
        self,
        conversation_id: str,
        text: str,
        attachments: list[AttachmentView],
        vision_budget: int | None = None,
    ) -> None:
        raise NotImplementedError

    def stop(self, conversation_id: str) -> None:
        raise NotImplementedError

    def regenerate(self, conversation_id: str, message_id: str) -> None:
        raise NotImplementedError

    def edit_and_resend(self, conversation_id: str, message_id: str, text: str) -> None:
        raise NotImplementedError

    def is_generating(self, conversation_id: str) -> bool:
        raise NotImplementedError

    def transcribe(self, attachment: AttachmentView) -> None:
        """Dictation: ask the model for a transcript; it arrives as `transcript_ready`."""
        raise NotImplementedError

    # attachments (ingest may run on a worker thread: implementations must allow that)
    def ingest_path(self, path: Path) -> AttachmentView:
        """Validate and store a file; raise `AttachmentRejected` with the reason."""
        raise NotImplementedError

    def ingest_image(self, image: QImage, name: str = "Pasted image.png") -> AttachmentView:
        raise NotImplementedError

    def play_audio(self, attachment: AttachmentView) -> None:
        """Play an audio attachment (stop with `stop_audio`)."""

    def stop_audio(self) -> None:
        pass

    def microphone_session(self) -> CaptureSession:
        raise NotImplementedError

    def camera_session(self) -> CaptureSession:
        raise NotImplementedError

    # model
    def model_status(self) -> ModelStatus:
        raise NotImplementedError

    def load_model(self, path: str) -> None:
        raise NotImplementedError

    def unload_model(self) -> None:
        raise NotImplementedError

    def memory_plan(self, path: str | None = None) -> tuple[list[tuple[str, str]], str]:
        """Rows (label, value) and a verdict sentence for the model at `path` (or the current)."""
        raise NotImplementedError

    def download_offer(self) -> DownloadOffer | None:
        raise NotImplementedError

    def start_download(self) -> None:
        raise NotImplementedError

    def cancel_download(self) -> None:
        raise NotImplementedError

    # settings
    def setting_fields(self) -> list[SettingField]:
        raise NotImplementedError

    def apply_settings(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def setting(self, key: str, default: Any = None) -> Any:
        for item in self.setting_fields():
            if item.key == key:
                return item.value
        return default

    def shutdown(self) -> None:
        """Stop background work (generation, recording, downloads) before the app quits."""
