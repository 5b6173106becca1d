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
from app.presets import BUILTIN_PRESETS, Preset
from app.settings_form import SettingField
from app.views import (
    ConversationSummary,
    InputProgressView,
    MessageView,
    ModelStatus,
    PrefillView,
    RunStats,
    ToolCardView,
    TrashedChat,
)

__all__ = [
    "BUILTIN_PRESETS", "DEFAULT_VISION_BUDGET", "VISION_BUDGETS", "AttachmentRejected",
    "AttachmentView", "Backend", "CaptureSession", "ChatSettings", "ConversationSummary",
    "DownloadOffer", "InputProgressView", "MessageView", "ModelStatus", "PrefillView", "Preset",
    "RunStats",
    "SettingField", "ToolCardView", "TrashedChat",
]  # fmt: skip
VISION_BUDGETS = IMAGE_BUDGETS
DEFAULT_VISION_BUDGET = DEFAULT_IMAGE_BUDGET


@dataclass
class AttachmentView:
    """One validated attachment as the UI shows it; `source` is the app's own object."""

    kind: str  # "image" | "audio" | "video" | "document"
    name: str
    path: Path | None = None
    size_bytes: int = 0
    duration_s: float | None = None
    width: int = 0
    height: int = 0
    thumbnail: QImage | None = None  # images (and a video's poster frame)
    waveform: list[float] = field(default_factory=list)  # audio peaks in 0..1
    frames: list[QImage] = field(default_factory=list)  # video frame strip
    detail: str = ""  # a document's size: "300 pages", "1,204 lines", "42 files"
    tokens: int | None = None  # a document's tokens in the prompt
    tokens_estimated: bool = False  # counted without the model's tokenizer
    source: Any = None


@dataclass
class ChatSettings:
    """One chat's own settings: its system prompt (None: the Settings' one) and options
    (`app.presets.CHAT_OPTION_NAMES`: sampling, thinking, tools, the preset's name)."""

    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


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
    device_name: str = ""  # the microphone or camera in use, for the user

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
    prefill_progress = Signal(str, str, object)  # conversation id, message id, PrefillView
    tool_event = Signal(str, str, object)  # conversation id, message id, ToolCardView
    message_finished = Signal(str, str, object)  # conversation id, message id, MessageView
    generating_changed = Signal(str, bool)  # conversation id, generating
    model_status_changed = Signal(object)  # ModelStatus
    stats_changed = Signal(object)  # RunStats
    transcript_ready = Signal(str)  # dictation result for the composer
    notice = Signal(str)  # a sentence for the status line (errors included)
    download_progress = Signal(int, int, str)  # done bytes, total bytes, what is happening
    download_finished = Signal(str, str)  # model folder ("" on failure), error message
    input_progress = Signal(str, object)  # conversation id, InputProgressView

    # conversations
    def conversations(self, query: str = "") -> list[ConversationSummary]:
        raise NotImplementedError

    def new_conversation(self, preset: str = "") -> str:
        """A new chat, started from the assistant called `preset` when one is named."""
        raise NotImplementedError

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        raise NotImplementedError

    def delete_conversation(self, conversation_id: str) -> None:
        """Move a chat to the trash (an answer being written stops first)."""
        raise NotImplementedError

    def undo_delete(self) -> str:
        """Restore the chat deleted last; its id, or "" when there is nothing to undo."""
        raise NotImplementedError

    def trash(self) -> list[TrashedChat]:
        raise NotImplementedError

    def restore_conversation(self, conversation_id: str) -> None:
        raise NotImplementedError

    def delete_forever(self, conversation_id: str = "") -> None:
        """Remove a chat in the trash for good ("": empty the trash)."""
        raise NotImplementedError

    def switch_version(self, conversation_id: str, message_id: str, step: int) -> None:
        """Show another version of a message (step -1: the one before); `conversation_reset` follows."""
        raise NotImplementedError

    # assistants and each chat's own settings
    def presets(self) -> list[Preset]:
        return list(BUILTIN_PRESETS)

    def save_preset(self, preset: Preset, replacing: str | None = None) -> None:
        """Add or change one of the user's assistants (ValueError says what is wrong)."""
        raise NotImplementedError

    def delete_preset(self, name: str) -> None:
        raise NotImplementedError

    def chat_settings(self, conversation_id: str) -> ChatSettings:
        raise NotImplementedError

    def set_chat_settings(self, conversation_id: str, **changes: Any) -> None:
        """Change a chat's system prompt or options (None: back to the Settings' value);
        ValueError names a bad value."""
        raise NotImplementedError

    # export, import, diagnostics (ValueError / OSError say what went wrong)
    def export_conversation(self, conversation_id: str, path: Path, fmt: str,
                            with_media: bool = False) -> None:  # fmt: skip
        raise NotImplementedError

    def export_all(self, path: Path, with_media: bool = False) -> int:
        raise NotImplementedError

    def import_file(self, path: Path) -> str:
        """Import chats; a sentence saying what came in (and what could not)."""
        raise NotImplementedError

    def save_diagnostics(self, path: Path, conversation_id: str = "") -> None:
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

    def microphone_session(self, device: str | None = None) -> CaptureSession:
        """A recording from the chosen microphone (`device`: this one instead)."""
        raise NotImplementedError

    def meeting_session(self, device: str | None = None) -> CaptureSession:
        """Record mode: the chosen microphone (`device`: this one instead) to disk for any
        length; `finished` brings the attachment."""
        raise NotImplementedError

    def export_transcript(self, message_id: str, fmt: str) -> str:
        """A transcript message as "txt", "md", "srt" or "json" text."""
        raise NotImplementedError

    def camera_session(self, device: str | None = None) -> CaptureSession:
        raise NotImplementedError

    def microphones(self) -> tuple[list[str], str]:
        """The microphones by name, and "" or why there are none."""
        return [], ""

    def cameras(self) -> list[str]:
        return []

    # model
    def model_status(self) -> ModelStatus:
        raise NotImplementedError

    def load_model(self, path: str) -> None:
        raise NotImplementedError

    def claude_desktop_servers(self, existing: list[str]) -> list[dict[str, Any]]:
        """The MCP servers of Claude Desktop's configuration not in `existing` (names), as
        `mcp_servers` entries; ValueError naming the file when it cannot be read."""
        return []

    def available_models(self) -> list[tuple[str, str]]:
        """(name, folder) of each model on this Mac: the app's own, then the Hugging Face
        cache's Gemma 4 checkpoints."""
        return []

    def unload_model(self) -> None:
        raise NotImplementedError

    def model_defaults(self) -> dict[str, Any]:
        """The model's own sampling defaults (shown where a setting says "Model default")."""
        return {}

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
