"""`Backend` over `app.session.AppSession`: the app's callbacks as queued Qt signals.

The session does the work (storage, engine choice, MCP, the API server, downloads) and
builds the view data (`app.views`); this module only adapts it to Qt: the controller's,
the engine's and the session's events arrive as signals on the UI thread, attachments get
their image previews, capture runs as `ui.capture_sessions`. Nothing here blocks the UI.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import SIGNAL, QBuffer, QByteArray, QIODevice, Signal
from PySide6.QtGui import QImage

from app import session as events
from app.controller_signals import ControllerSignals
from app.engines.contract import EngineFactory
from app.errors import MEDIA_KINDS, kind_of
from app.session import AppSession
from app.settings_form import setting_fields
from app.storage.conversations import StorageError
from app.views import (
    PrefillView,
    conversation_summaries,
    message_view,
    message_views,
    run_stats,
    tool_card,
    trashed_chats,
)
from ui.backend import (
    AttachmentRejected,
    AttachmentView,
    Backend,
    ChatSettings,
    InputProgressView,
    MessageView,
    Preset,
    RunStats,
)
from ui.capture_sessions import RecordingSession, attachment_view


def _while_open(slot: Callable[..., None]) -> Callable[..., None]:
    """A slot that does nothing once the backend is shut down (its storage is closed, but
    events the engine thread queued before that still reach the UI thread)."""

    @functools.wraps(slot)
    def guarded(self: AppBackend, *args: Any) -> None:
        if not self._closed:
            slot(self, *args)

    return guarded


class AppBackend(Backend):
    """The real backend. Capture sources and the engine factory are injectable for tests."""

    tool_approval_requested = Signal(object)  # app.tools.approval.ToolApproval: answer() it
    tool_approval_resolved = Signal(object)  # that approval, answered (by the user or not)
    mcp_status_changed = Signal(str, str, str)  # server name, MCPStatus value, message
    tools_changed = Signal(list)  # the tool names the chat now offers
    server_changed = Signal(str)  # the local API server's base URL, "" when it is off
    _session_event = Signal(object)  # any thread -> the UI thread
    _transcript = Signal(str, object)  # the engine thread -> the UI thread

    def __init__(
        self,
        model_path: str | None = None,
        data_dir: str | None = None,
        *,
        engine_factory: EngineFactory | None = None,
        mic_source_factory: Callable[[], Any] | None = None,
        camera_source_factory: Callable[[], Any] | None = None,
        clip_audio: bool = True,
    ) -> None:
        super().__init__()
        self._closed = False
        self.session = AppSession(data_dir, engine_factory=engine_factory)
        self.session.can_ask = True
        self.sources = (mic_source_factory, camera_source_factory, clip_audio)
        self._live: dict[int, tuple[str, str]] = {}  # streaming message id -> text, thinking
        c = ControllerSignals(self.session.controller, self)
        c.message_added.connect(self._on_message_added)
        c.message_delta.connect(self._on_message_delta)
        c.message_progress.connect(self._on_message_progress)
        c.message_finished.connect(self._on_message_finished)
        c.turn_finished.connect(self._on_turn_finished)
        c.input_progressed.connect(self._on_input_progressed)
        self._session_event.connect(self._on_session_event)
        self._transcript.connect(self._on_transcript)
        self._unsubscribe = self.session.subscribe(self._session_event.emit)
        self.session.start(model_path)

    def setting(self, key: str, default: Any = None) -> Any:
        return getattr(self.session.settings, key, default)

    @_while_open
    def _on_session_event(self, event: Any) -> None:
        if isinstance(event, events.ApprovalRequested):
            if not self.receivers(SIGNAL("tool_approval_requested(PyObject)")):
                event.approval.answer(False)  # nobody can ask the user: no call
            self.tool_approval_requested.emit(event.approval)
        elif isinstance(event, events.ApprovalResolved):
            self.tool_approval_resolved.emit(event.approval)
        elif isinstance(event, events.ModelStatusChanged):
            self.model_status_changed.emit(event.status)
            if event.status.state == "ready":
                self.stats_changed.emit(RunStats(context_limit=event.status.context_limit))
        elif isinstance(event, events.Notice):
            self.notice.emit(event.text)
        elif isinstance(event, events.ToolsChanged):
            self.tools_changed.emit(list(event.names))
        elif isinstance(event, events.MCPStatusChanged):
            self.mcp_status_changed.emit(event.server, event.status, event.message)
        elif isinstance(event, events.ServerChanged):
            self.server_changed.emit(event.url)

    # --- conversations and messages ----------------------------------------------------------
    def _shown(self, view: MessageView) -> MessageView:
        view.attachments = [attachment_view(a) for a in view.attachments]
        return view

    def messages(self, conversation_id: str) -> list[MessageView]:
        views = message_views(self.session.storage, int(conversation_id), self._live)
        return [self._shown(view) for view in views]

    def conversations(self, query: str = "") -> list[Any]:
        active = self.session.controller.active_turn
        return conversation_summaries(self.session.storage, lambda c: active(c) is not None, query)

    def new_conversation(self, preset: str = "") -> str:
        conversation = self.session.new_chat(preset)
        self.conversations_changed.emit()
        return str(conversation.id)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        self.session.storage.conversations.rename_conversation(int(conversation_id), title)
        self.conversations_changed.emit()

    def delete_conversation(self, conversation_id: str) -> None:
        self.session.delete_chat(int(conversation_id))
        self.conversations_changed.emit()

    def undo_delete(self) -> str:
        restored = self.session.undo_delete()
        self.conversations_changed.emit()
        return "" if restored is None else str(restored)

    def trash(self) -> list[Any]:
        return trashed_chats(self.session.storage)

    def restore_conversation(self, conversation_id: str) -> None:
        self.session.storage.conversations.restore_conversation(int(conversation_id))
        self.conversations_changed.emit()

    def delete_forever(self, conversation_id: str = "") -> None:
        self.session.delete_forever(int(conversation_id) if conversation_id else None)

    def switch_version(self, conversation_id: str, message_id: str, step: int) -> None:
        self._attempt(lambda: self.session.switch_version(int(message_id), step))
        self.conversation_reset.emit(conversation_id)

    def presets(self) -> list[Preset]:
        return self.session.presets.list()

    def save_preset(self, preset: Preset, replacing: str | None = None) -> None:
        self.session.presets.save(preset, replacing=replacing)

    def delete_preset(self, name: str) -> None:
        self.session.presets.delete(name)

    def chat_settings(self, conversation_id: str) -> ChatSettings:
        conv = self.session.storage.conversations.get_conversation(int(conversation_id))
        return ChatSettings(conv.system_prompt, dict(conv.options))

    def set_chat_settings(self, conversation_id: str, **changes: Any) -> None:
        self.session.controller.set_chat_options(int(conversation_id), **changes)

    def export_conversation(self, conversation_id, path, fmt, with_media=False) -> None:
        self.session.export_chat(int(conversation_id), path, fmt, with_media=with_media)

    def export_all(self, path: Path, with_media: bool = False) -> int:
        return self.session.export_all(path, with_media=with_media)[1]

    def import_file(self, path: Path) -> str:
        report = self.session.import_chats(path)
        self.conversations_changed.emit()
        return report.summary()

    def save_diagnostics(self, path: Path, conversation_id: str = "") -> None:
        self.session.save_diagnostics(path, int(conversation_id) if conversation_id else None)

    def _attempt(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:
            if not isinstance(exc, StorageError) and kind_of(exc) not in MEDIA_KINDS:
                raise
            self.notice.emit(str(exc))  # nothing to send, or too much media

    def send(self, conversation_id, text, attachments, vision_budget=None) -> None:
        sources = [a.source for a in attachments]
        send = self.session.controller.send
        self._attempt(lambda: send(int(conversation_id), text, sources, image_budget=vision_budget))
        self.conversations_changed.emit()

    def stop(self, conversation_id: str) -> None:
        self.session.cancel(int(conversation_id))

    def regenerate(self, conversation_id: str, message_id: str) -> None:
        self._attempt(lambda: self.session.controller.regenerate(int(conversation_id)))
        self.conversation_reset.emit(conversation_id)

    def edit_and_resend(self, conversation_id: str, message_id: str, text: str) -> None:
        self._attempt(lambda: self.session.controller.edit_and_resend(int(message_id), text))
        self.conversation_reset.emit(conversation_id)

    def is_generating(self, conversation_id: str) -> bool:
        return self.session.controller.active_turn(int(conversation_id)) is not None

    def transcribe(self, attachment: AttachmentView) -> None:
        self.session.transcribe(attachment.path, self._transcript.emit)

    @_while_open
    def _on_transcript(self, text: str, error: str | None) -> None:
        if error is None:
            self.transcript_ready.emit(text)
        else:
            self.notice.emit(f"Dictation failed: {error}")

    @_while_open
    def _on_message_added(self, cid: int, mid: int, role: str) -> None:
        message = self.session.storage.conversations.get_message(mid)
        if role == "tool":  # the result completes the card on the answer that made the call
            views = message_views(self.session.storage, cid)
            target = next((v for v in reversed(views) if v.role == "assistant" and v.tools), None)
            if target is not None:
                self.tool_event.emit(str(cid), target.id, tool_card(message))
            return
        if message.status == "streaming":
            self._live[mid] = ("", "")
        self.message_added.emit(str(cid), self._shown(message_view(message, self.session.storage)))
        if role == "assistant":
            self.generating_changed.emit(str(cid), True)

    @_while_open
    def _on_message_delta(self, cid: int, mid: int, text: str, thinking: str) -> None:
        old_text, old_thinking = self._live.get(mid, ("", ""))
        self._live[mid] = (old_text + text, old_thinking + thinking)
        for kind, piece in (("thinking", thinking), ("text", text)):
            if piece:
                self.delta.emit(str(cid), str(mid), kind, piece)

    @_while_open
    def _on_message_progress(self, cid: int, mid: int, done: int, total: int, eta: object) -> None:
        self.prefill_progress.emit(str(cid), str(mid), PrefillView(done, total, eta))

    @_while_open
    def _on_message_finished(self, cid: int, mid: int, status: str, error: str) -> None:
        self._live.pop(mid, None)
        message = self.session.storage.conversations.get_message(mid)
        view = self._shown(message_view(message, self.session.storage))
        counts = self.session.storage.conversations.version_counts(cid)
        view.version, view.versions = counts.get(mid, (1, 1))
        self.message_finished.emit(str(cid), str(mid), view)
        if view.stats is not None:
            limit = self.session.model_status.context_limit
            self.stats_changed.emit(run_stats(view.stats, limit))

    @_while_open
    def _on_input_progressed(self, event: Any) -> None:
        p = event.progress
        view = InputProgressView(note=event.note, done=event.finished)
        if p is not None:
            view = InputProgressView(p.name, p.message, p.fraction, p.stage)
        self.input_progress.emit(str(event.conversation_id), view)

    def export_transcript(self, message_id: str, fmt: str) -> str:
        from app.recordings import Transcript, export_transcript

        message = self.session.storage.conversations.get_message(int(message_id))
        transcript = (message.stats or {}).get("transcript")
        if not transcript:
            raise ValueError("This message is not a transcript.")
        return export_transcript(Transcript.from_dict(transcript), fmt)  # type: ignore[arg-type]

    @_while_open
    def _on_turn_finished(self, turn: Any) -> None:
        self.input_progress.emit(str(turn.conversation_id), InputProgressView(done=True))
        self.generating_changed.emit(str(turn.conversation_id), False)
        self.conversations_changed.emit()

    # --- attachments and capture -------------------------------------------------------------
    def _ingest(self, name: str, ingest: Callable[[], Any]) -> AttachmentView:
        try:
            return attachment_view(ingest())
        except Exception as exc:
            if kind_of(exc) in MEDIA_KINDS:
                raise AttachmentRejected(name, str(exc)) from exc
            raise

    def ingest_path(self, path: Path) -> AttachmentView:
        return self._ingest(Path(path).name, lambda: self.session.ingestor.from_path(path))

    def ingest_image(self, image: QImage, name: str = "Pasted image.png") -> AttachmentView:
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        ingestor = self.session.ingestor
        return self._ingest(name, lambda: ingestor.from_bytes(bytes(data), filename=name))

    def play_audio(self, attachment: AttachmentView) -> None:
        self.session.play_audio(attachment.path, self.notice.emit)

    def stop_audio(self) -> None:
        self.session.stop_audio()

    def microphone_session(self, device: str | None = None) -> RecordingSession:
        mic, _, _ = self.sources
        return RecordingSession(
            lambda **callbacks: self.session.microphone(mic, device=device, **callbacks)
        )

    def meeting_session(self, device: str | None = None) -> RecordingSession:
        mic, _, _ = self.sources
        return RecordingSession(lambda **callbacks: self.session.record_meeting(
            mic() if mic else None, device=device, **callbacks))  # fmt: skip

    def camera_session(self, device: str | None = None) -> RecordingSession:
        mic, camera, with_audio = self.sources
        return RecordingSession(lambda **callbacks: self.session.camera(
            camera, device=device, microphone_source=mic, with_audio=with_audio, **callbacks))  # fmt: skip

    def microphones(self) -> tuple[list[str], str]:
        from app.capture.devices import microphones

        found, reason = microphones()
        return [d.name for d in found], reason

    def cameras(self) -> list[str]:
        from app.capture.devices import cameras

        return [c.name for c in cameras()]

    # --- model, downloads, settings ----------------------------------------------------------
    def model_status(self) -> Any:
        return self.session.model_status

    def load_model(self, path: str) -> None:
        self.session.load_local(path, remember=True)

    def available_models(self) -> list[tuple[str, str]]:
        return self.session.available_models()

    def claude_desktop_servers(self, existing: list[str]) -> list[dict[str, Any]]:
        from app.mcp_config import import_claude_desktop_servers

        return [c.to_dict() for c in import_claude_desktop_servers(existing=existing)]

    def unload_model(self) -> None:
        self.session.unload()

    def memory_plan(self, path: str | None = None) -> tuple[list[tuple[str, str]], str]:
        return self.session.memory_plan(path)

    def model_defaults(self) -> dict[str, Any]:
        return self.session.model_defaults()

    def download_offer(self) -> Any:
        return self.session.download_offer()

    def start_download(self) -> None:
        self.session.start_download(self.download_progress.emit, self.download_finished.emit)

    def cancel_download(self) -> None:
        self.session.cancel_download()

    def setting_fields(self) -> list[Any]:
        store = self.session.settings_store
        return setting_fields(self.session.settings, store.secrets.location())

    def apply_settings(self, values: dict[str, Any]) -> None:
        self.session.apply_settings(values)

    def shutdown(self) -> None:
        self._closed = True  # events already queued for the UI thread are dropped
        self._unsubscribe()
        self.session.close()
