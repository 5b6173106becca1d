"""`Backend` over the real application: storage, engine service, controller, capture, downloads.

This is the one module of ui/ that knows the shapes of app/. It turns store rows into view
models, relays the controller's and the engine's queued Qt signals, and wraps the capture
recorders' worker-thread callbacks in `CaptureSession` signals. Everything slow (loading,
generating, stopping a recording, ingesting a clip, downloading, starting MCP servers) runs
off the UI thread.

The engine service's factory picks the engine per load: the local checkpoint, or (Settings
`backend` = "remote") `app.remote_backend.RemoteEngine` on `remote_url`. Changing the
backend settings reloads. The MCP servers in Settings are started on a worker thread and
their tools handed to the controller for every chat; an untrusted server's call waits for
`ToolApproval.answer()` (the window asks the user through `tool_approval_requested`).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import numpy as np
from PySide6.QtCore import SIGNAL, QBuffer, QByteArray, QIODevice, QTimer, Signal
from PySide6.QtGui import QImage

from app.attachments import Attachment, AttachmentIngestor, MediaLimits
from app.capture.errors import CaptureError, CaptureUnavailable
from app.controller_signals import ControllerSignals
from app.conversation_controller import ConversationController
from app.engine_service import EngineService
from app.engine_signals import EngineSignals
from app.engines.contract import GenerationStats, LocalModel, RemoteModel, open_engine
from app.mcp_client import MCPCall, MCPManager
from app.options import GenerationOptions
from app.settings import (
    DEFAULTS,
    REMOTE_FIELDS,
    SERVER_FIELDS,
    Settings,
    SettingsError,
    SettingsStore,
)
from app.storage import Storage, open_storage
from app.storage.conversations import Message, StorageError
from app.tools.registry import ToolRegistry
from mlx_model.processing.errors import MediaError
from ui.backend import (
    AttachmentRejected,
    AttachmentView,
    Backend,
    CaptureSession,
    ConversationSummary,
    DownloadOffer,
    MessageView,
    ModelStatus,
    RunStats,
    SettingField,
    ToolCardView,
)

TRANSCRIBE_PROMPT = (
    "Transcribe this audio exactly as spoken. Reply with the transcript only, no comments."
)
PRECISION_BITS = {"auto": None, "bf16": None, "8bit": 8, "4bit": 4}
SETTING_SECTIONS = {
    "Model": ("model_path", "precision", "context_length", "kv_cache_bits"),
    "Generation": (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repetition_penalty",
        "max_tokens",
        "seed",
        "system_prompt",
        "thinking",
        "vision_budget",
    ),  # fmt: skip
    "Devices": ("mic_device", "camera_device"),
    "Backend": REMOTE_FIELDS,
    "Tools": ("mcp_servers",),
    "Server": ("server_enabled", "server_host", "server_port", "server_api_key"),
    "Interface": ("theme", "send_with_enter", "dictation_mode"),
}
SETTING_LABELS = {
    "model_path": "Model folder", "kv_cache_bits": "KV cache bits (empty: full precision)",
    "top_p": "Top-p", "top_k": "Top-k", "min_p": "Min-p", "max_tokens": "Maximum answer tokens",
    "thinking": "Let the model think first", "vision_budget": "Default image detail (tokens)",
    "mic_device": "Microphone", "camera_device": "Camera", "server_enabled": "Local API server",
    "server_host": "Server address", "server_port": "Server port", "server_api_key": "API key",
    "theme": "Appearance", "send_with_enter": "Return sends the message",
    "backend": "Run the model on", "remote_url": "Remote server URL",
    "remote_model": "Remote model", "remote_api_key": "Remote API key",
    "mcp_servers": "MCP servers (JSON)", "dictation_mode": "Dictation mode (push-to-talk transcribes)",
}  # fmt: skip
SETTING_HELP = {
    "backend": "local: the model on this computer. remote: an OpenAI-compatible server "
    "(vLLM, LM Studio, another Gemma Desk) at the URL below.",
    "remote_url": "The server's OpenAI base URL, e.g. http://gpu-box:8000/v1.",
    "remote_model": "The model id the server serves; empty: the first one it lists.",
    "remote_api_key": "Saved in the app's database as written. Write env:NAME to read the "
    "key from the environment variable NAME instead.",
    "mcp_servers": 'A JSON list, e.g. [{"name": "notes", "command": ["npx", "-y", '
    '"@modelcontextprotocol/server-filesystem", "/Users/me/Notes"]}, {"name": "web", '
    '"url": "http://127.0.0.1:8000/mcp", "trusted": true}]. Gemma asks before each call '
    "to a server that is not trusted.",
    "dictation_mode": "Push-to-talk puts a transcript in the message field instead of "
    "attaching the recording.",
}
APPROVAL_TIMEOUT_S = 300.0  # an unanswered tool approval counts as "no"


class ToolApproval:
    """An MCP tool call waiting for the user's yes or no; the first answer counts."""

    def __init__(self, call: MCPCall) -> None:
        self.call = call
        self.approved = False
        self._answered = threading.Event()
        self._lock = threading.Lock()

    @property
    def prompt(self) -> str:
        arguments = json.dumps(self.call.arguments, ensure_ascii=False)
        if len(arguments) > 400:
            arguments = arguments[:399] + "…"
        return (f"Gemma wants to run the tool “{self.call.tool}” of the MCP server "
                f"“{self.call.server}” with {arguments}. Allow it?")  # fmt: skip

    @property
    def answered(self) -> bool:
        return self._answered.is_set()

    def answer(self, approved: bool) -> bool:
        """Record the answer; False when the request was already answered."""
        with self._lock:
            if self._answered.is_set():
                return False
            self.approved = bool(approved)
            self._answered.set()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until answered (or `timeout`: counts as no); True when approved."""
        return self._answered.wait(timeout) and self.approved


def qimage_from_file(path: Path | None) -> QImage | None:
    if path is None or not Path(path).exists():
        return None
    image = QImage(str(path))
    return None if image.isNull() else image


def qimage_from_rgb(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def attachment_view(attachment: Attachment) -> AttachmentView:
    """An app `Attachment` as the widgets show it."""
    strip = qimage_from_file(attachment.frame_strip) if attachment.kind == "video" else None
    return AttachmentView(
        kind=attachment.kind,
        name=attachment.filename,
        path=attachment.path,
        size_bytes=attachment.size,
        duration_s=attachment.duration_s,
        width=attachment.width or 0,
        height=attachment.height or 0,
        thumbnail=qimage_from_file(attachment.thumbnail),
        waveform=attachment.waveform,
        frames=[strip] if strip is not None else [],
        source=attachment,
    )


def stats_object(stats: dict[str, Any] | None) -> GenerationStats | None:
    if not stats:
        return None
    known = {f.name for f in dataclass_fields(GenerationStats)}
    return GenerationStats(**{k: v for k, v in stats.items() if k in known})


class _RecordingSession(CaptureSession):
    """Shared plumbing: run blocking stop/ingest work on a thread, report through signals."""

    def __init__(self, ingestor: Callable[[Any], Attachment]) -> None:
        super().__init__()
        self._ingest = ingestor
        self._done = False

    def _finish_with(self, produce: Callable[[], Any]) -> None:
        def work() -> None:
            try:
                capture = produce()
                attachment = self._ingest(capture) if capture is not None else None
                self._emit_finished(attachment_view(attachment) if attachment else None)
            except (CaptureError, MediaError) as exc:
                self._emit_failed(str(getattr(exc, "reason", exc)))
            except Exception as exc:  # noqa: BLE001 - a recording problem never crashes the app
                self._emit_failed(f"The recording could not be saved: {exc}")

        threading.Thread(target=work, name="capture-finish", daemon=True).start()

    def _emit_finished(self, view: AttachmentView | None) -> None:
        if not self._done:
            self._done = True
            self.finished.emit(view)

    def _emit_failed(self, reason: str) -> None:
        if not self._done:
            self._done = True
            self.failed.emit(reason)


class MicSession(_RecordingSession):
    """Push-to-talk over `app.capture.MicrophoneRecorder`."""

    def __init__(self, backend: AppBackend) -> None:
        super().__init__(lambda rec: backend.ingestor.from_capture(rec)[0])
        from app.capture.microphone import MicrophoneRecorder

        self.limit_s = backend.limits.max_audio_s
        self.recorder = MicrophoneRecorder(
            backend.mic_source_factory,
            max_seconds=self.limit_s,
            countdown_from=int(self.limit_s),
            on_level=lambda ev: (self.level.emit(_meter(ev.dbfs)),
                                 self.remaining.emit(max(0.0, self.limit_s - ev.elapsed_s))),
            on_limit=lambda recording: self._finish_with(lambda: recording),
            on_error=lambda exc: self._emit_failed(str(exc)),
        )  # fmt: skip

    def start(self) -> None:
        try:
            self.recorder.start()
        except CaptureUnavailable as exc:
            reason = exc.reason
            QTimer.singleShot(0, self, lambda: self._emit_failed(reason))

    def stop(self) -> None:
        self._finish_with(self.recorder.stop)

    def cancel(self) -> None:
        self.recorder.cancel()
        self._emit_finished(None)


def _meter(dbfs: float) -> float:
    """-60 dBFS (silence) .. 0 dBFS (full scale) -> 0..1 for the level meter."""
    if dbfs == float("-inf"):
        return 0.0
    return max(0.0, min(1.0, (dbfs + 60.0) / 60.0))


class CameraSession(_RecordingSession):
    """Webcam clip over `app.capture.CameraRecorder` (the microphone records alongside)."""

    _preview = Signal(object)  # numpy RGB from the capture thread -> QImage on the UI thread

    def __init__(self, backend: AppBackend) -> None:
        super().__init__(lambda clip: backend.ingestor.from_capture(clip)[0])
        from app.capture.camera import CameraRecorder
        from app.capture.microphone import MicrophoneRecorder

        self.limit_s = backend.limits.max_video_s
        microphone = None
        if backend.clip_audio:
            microphone = MicrophoneRecorder(backend.mic_source_factory, max_seconds=self.limit_s)
        self.recorder = CameraRecorder(
            backend.camera_source_factory,
            microphone=microphone,
            max_seconds=self.limit_s,
            on_preview=lambda frame: self._preview.emit(frame.image),
            on_finished=lambda clip: self._finish_with(lambda: clip),
            on_error=lambda exc: self._emit_failed(str(exc)),
        )
        self._preview.connect(lambda rgb: self.frame.emit(qimage_from_rgb(rgb)))
        self._started_at: float | None = None
        self._ticker = QTimer(self, interval=250)
        self._ticker.timeout.connect(self._tick)

    def start(self) -> None:
        try:
            self.recorder.open()
        except CaptureUnavailable as exc:
            reason = exc.reason
            QTimer.singleShot(0, self, lambda: self._emit_failed(reason))

    def record(self) -> None:
        self.recorder.start_recording()
        self._started_at = time.monotonic()
        self._ticker.start()

    def _tick(self) -> None:
        if self._started_at is not None:
            self.remaining.emit(max(0.0, self.limit_s - (time.monotonic() - self._started_at)))

    def stop(self) -> None:
        self._ticker.stop()
        recorder = self.recorder

        def produce():
            clip = recorder.stop_recording()
            recorder.close()
            return clip

        self._finish_with(produce)

    def cancel(self) -> None:
        self._ticker.stop()
        threading.Thread(target=self.recorder.close, daemon=True).start()
        self._emit_finished(None)


class AppBackend(Backend):
    """The real backend. Sources and the (local) engine factory are injectable for tests.

    An injected `service` keeps its own factory, so the remote backend needs the default one.
    """

    tool_approval_requested = Signal(object)  # ToolApproval: call its answer() from the UI
    tool_approval_resolved = Signal(object)  # ToolApproval answered (by the user or otherwise)
    mcp_status_changed = Signal(str, str, str)  # server name, MCPStatus value, message
    tools_changed = Signal(list)  # the tool names the chat now offers
    server_changed = Signal(str)  # the local API server's base URL, "" when it is off
    _settings_changed = Signal(object)  # changed names (any thread -> UI thread)
    _mcp_event = Signal(int, str, str, str)  # generation, server name, status, message
    _mcp_started = Signal(int)  # generation
    _server_started = Signal(int, str)  # generation, base URL (worker thread -> UI thread)

    def __init__(
        self,
        model_path: str | None = None,
        data_dir: str | None = None,
        *,
        storage: Storage | None = None,
        service: EngineService | None = None,
        engine_factory: Callable[..., Any] | None = None,
        mic_source_factory: Callable[[], Any] | None = None,
        camera_source_factory: Callable[[], Any] | None = None,
        clip_audio: bool = True,
        load_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.storage = storage or open_storage(data_dir)
        self.settings_store = SettingsStore(self.storage.db)
        self._local_factory = engine_factory or open_engine
        self.service = service or EngineService(self._make_engine)
        self.controller = ConversationController(self.storage, self.service, self.settings_store)
        self.engine_signals = EngineSignals(self.service, self)
        self.controller_signals = ControllerSignals(self.controller, self)
        self.limits = MediaLimits.defaults()
        self.ingestor = AttachmentIngestor(self.storage.media, self.limits)
        self.mic_source_factory = mic_source_factory
        self.camera_source_factory = camera_source_factory
        self.clip_audio = clip_audio
        self.load_options = dict(load_options or {})
        self.status = ModelStatus()
        self._live: dict[int, list[str]] = {}  # streaming message id -> [text, thinking]
        self._transcripts: dict[int, list[str]] = {}  # dictation job id -> text parts
        self._load_jobs: set[int] = set()
        self._downloader = None
        self._switching_backend = False  # load_model() itself sets backend = "local"
        self.mcp: MCPManager | None = None
        self.mcp_status: dict[str, tuple[str, str]] = {}  # server name -> (status, message)
        self.tool_names: list[str] = []
        self._mcp_generation = 0
        self._mcp_lock = threading.Lock()
        self._approvals: set[ToolApproval] = set()
        self.server = None  # app.server.runner.ServerThread while the local API server runs
        self.server_url = ""
        self._server_generation = 0
        self._server_lock = threading.Lock()
        self._closing = False

        c, e = self.controller_signals, self.engine_signals
        c.message_added.connect(self._on_message_added)
        c.message_delta.connect(self._on_message_delta)
        c.message_finished.connect(self._on_message_finished)
        c.turn_finished.connect(self._on_turn_finished)
        e.load_progress.connect(self._on_load_progress)
        e.model_loaded.connect(self._on_model_loaded)
        e.model_unloaded.connect(self._on_model_unloaded)
        e.job_failed.connect(self._on_job_failed)
        e.text_delta.connect(self._on_engine_text)
        e.job_done.connect(self._on_job_done)
        self._settings_changed.connect(self._on_settings_changed)
        self._mcp_event.connect(self._on_mcp_event)
        self._mcp_started.connect(self._on_mcp_started)
        self._server_started.connect(self._on_server_started)
        self._unsubscribe_settings = self.settings_store.subscribe(
            lambda _settings, changed: self._settings_changed.emit(set(changed))
        )

        if model_path:  # given on the command line: this run uses that checkpoint
            self._load_local(model_path)
        else:
            self.reload_backend()
        if self.settings.mcp_servers:
            self.start_mcp()
        if self.settings.server_enabled:
            self.apply_server_setting()

    @property
    def settings(self) -> Settings:
        return self.settings_store.settings

    def setting(self, key: str, default: Any = None) -> Any:
        return getattr(self.settings, key, default)

    def _make_engine(self, spec: Any, progress: Callable[..., None] | None = None) -> Any:
        """The service's engine factory: the injected one for local models, else the default."""
        if isinstance(spec, RemoteModel):
            return open_engine(spec, progress)
        return self._local_factory(spec, progress)

    # --- view models -----------------------------------------------------------------------
    def _attachments_of(self, message: Message) -> list[AttachmentView]:
        views = []
        for ref in message.attachments:
            record = self.storage.media.find(ref.sha256)
            if record is not None:
                views.append(attachment_view(Attachment.from_record(record, ref.filename)))
        return views

    def _view(self, message: Message) -> MessageView:
        text, thinking = message.text, message.thinking
        live = self._live.get(message.id)
        if live is not None and message.status == "streaming":
            text, thinking = live
        stats = stats_object(message.stats)
        thinking_s = (message.stats or {}).get("extra", {}).get("thinking_s")
        return MessageView(
            id=str(message.id),
            role=message.role,
            text=text,
            thinking=thinking,
            thinking_seconds=thinking_s,
            attachments=self._attachments_of(message),
            tools=[
                ToolCardView(c.get("name", ""), c.get("arguments", {}), call_id=c.get("id", ""))
                for c in message.tool_calls or []
            ],  # fmt: skip
            error=message.error if message.status == "error" else None,
            error_kind=(message.stats or {}).get("error_kind", "internal" if message.error else ""),
            streaming=message.status == "streaming",
            stats=stats,
        )

    def messages(self, conversation_id: str) -> list[MessageView]:
        views: list[MessageView] = []
        for message in self.storage.conversations.messages(int(conversation_id)):
            if message.role == "tool":
                result = message.tool_result or {}
                call = result.get("call") or {}
                card = ToolCardView(call.get("name", ""), call.get("arguments", {}),
                                    result.get("result"), result.get("error"),
                                    call.get("id", ""), done=True)  # fmt: skip
                target = next((v for v in reversed(views) if v.role == "assistant"), None)
                if target is not None:
                    _merge_tool(target, card)
                continue
            if message.role == "system":
                continue
            views.append(self._view(message))
        return views

    # --- conversations -------------------------------------------------------------------
    def conversations(self, query: str = "") -> list[ConversationSummary]:
        store = self.storage.conversations
        if query:
            seen: dict[int, ConversationSummary] = {}
            for hit in store.search(query):
                if hit.conversation_id not in seen:
                    conv = store.get_conversation(hit.conversation_id)
                    seen[conv.id] = self._summary(conv)
            return list(seen.values())
        return [self._summary(conv) for conv in store.list_conversations()]

    def _summary(self, conv) -> ConversationSummary:
        return ConversationSummary(str(conv.id), conv.title, conv.updated_at,
                                   self.controller.active_turn(conv.id) is not None)  # fmt: skip

    def new_conversation(self) -> str:
        conv = self.controller.new_conversation()
        self.conversations_changed.emit()
        return str(conv.id)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        self.storage.conversations.rename_conversation(int(conversation_id), title)
        self.conversations_changed.emit()

    def delete_conversation(self, conversation_id: str) -> None:
        self.controller.cancel(int(conversation_id))
        self.storage.conversations.delete_conversation(int(conversation_id))
        self.conversations_changed.emit()

    # --- generation ------------------------------------------------------------------------
    def send(self, conversation_id, text, attachments, vision_budget=280) -> None:
        try:
            self.controller.send(int(conversation_id), text, [a.source for a in attachments],
                                 image_budget=vision_budget)  # fmt: skip
        except StorageError as exc:
            self.notice.emit(str(exc))
        self.conversations_changed.emit()

    def stop(self, conversation_id: str) -> None:
        self.controller.cancel(int(conversation_id))
        self._decline_pending_approvals()  # a tool waiting for a yes is part of the answer

    def regenerate(self, conversation_id: str, message_id: str) -> None:
        try:
            self.controller.regenerate(int(conversation_id))
        except StorageError as exc:
            self.notice.emit(str(exc))
        self.conversation_reset.emit(conversation_id)

    def edit_and_resend(self, conversation_id: str, message_id: str, text: str) -> None:
        try:
            self.controller.edit_and_resend(int(message_id), text)
        except StorageError as exc:
            self.notice.emit(str(exc))
        self.conversation_reset.emit(conversation_id)

    def is_generating(self, conversation_id: str) -> bool:
        return self.controller.active_turn(int(conversation_id)) is not None

    def transcribe(self, attachment: AttachmentView) -> None:
        content = [{"type": "audio", "path": str(attachment.path)},
                   {"type": "text", "text": TRANSCRIBE_PROMPT}]  # fmt: skip
        options = GenerationOptions(max_tokens=self.settings.max_tokens)
        job = self.service.generate([{"role": "user", "content": content}], options=options)
        self._transcripts[job.id] = []

    def _on_message_added(self, cid: int, mid: int, role: str) -> None:
        message = self.storage.conversations.get_message(mid)
        if role == "tool":
            result = message.tool_result or {}
            call = result.get("call") or {}
            views = self.messages(str(cid))
            target = next((v for v in reversed(views) if v.role == "assistant" and v.tools), None)
            if target is not None:
                card = ToolCardView(call.get("name", ""), call.get("arguments", {}),
                                    result.get("result"), result.get("error"), call.get("id", ""), True)  # fmt: skip
                self.tool_event.emit(str(cid), target.id, card)
            return
        if message.status == "streaming":
            self._live[mid] = ["", ""]
        self.message_added.emit(str(cid), self._view(message))
        if role == "assistant":
            self.generating_changed.emit(str(cid), True)

    def _on_message_delta(self, cid: int, mid: int, text: str, thinking: str) -> None:
        live = self._live.setdefault(mid, ["", ""])
        if thinking:
            live[1] += thinking
            self.delta.emit(str(cid), str(mid), "thinking", thinking)
        if text:
            live[0] += text
            self.delta.emit(str(cid), str(mid), "text", text)

    def _on_message_finished(self, cid: int, mid: int, status: str, error: str) -> None:
        self._live.pop(mid, None)
        message = self.storage.conversations.get_message(mid)
        view = self._view(message)
        self.message_finished.emit(str(cid), str(mid), view)
        stats = view.stats
        if stats is not None:
            self.stats_changed.emit(RunStats(stats.decode_tps, stats.context_tokens,
                                             stats.context_limit or self.status.context_limit,
                                             stats.peak_memory_bytes))  # fmt: skip

    def _on_turn_finished(self, turn) -> None:
        self.generating_changed.emit(str(turn.conversation_id), False)
        self.conversations_changed.emit()

    def _on_engine_text(self, job_id: int, text: str) -> None:
        if job_id in self._transcripts:
            self._transcripts[job_id].append(text)

    def _on_job_done(self, job_id: int, ok: bool, cancelled: bool) -> None:
        if job_id in self._transcripts:
            self.transcript_ready.emit("".join(self._transcripts.pop(job_id)).strip())
        self._load_jobs.discard(job_id)

    # --- attachments ---------------------------------------------------------------------------
    def ingest_path(self, path: Path) -> AttachmentView:
        try:
            return attachment_view(self.ingestor.from_path(path))
        except MediaError as exc:
            raise AttachmentRejected(Path(path).name, str(exc)) from exc

    def ingest_image(self, image: QImage, name: str = "Pasted image.png") -> AttachmentView:
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        try:
            return attachment_view(self.ingestor.from_bytes(bytes(data), filename=name))
        except MediaError as exc:
            raise AttachmentRejected(name, str(exc)) from exc

    def play_audio(self, attachment: AttachmentView) -> None:
        def play() -> None:
            try:
                import sounddevice
                import soundfile

                samples, rate = soundfile.read(str(attachment.path), dtype="float32")
                sounddevice.play(samples, rate)
            except Exception as exc:  # noqa: BLE001 - no audio output: say so
                self.notice.emit(f"Cannot play {attachment.name}: {exc}")

        threading.Thread(target=play, daemon=True).start()

    def stop_audio(self) -> None:
        try:
            import sounddevice

            sounddevice.stop()
        except Exception:  # noqa: BLE001
            pass

    def microphone_session(self) -> CaptureSession:
        return MicSession(self)

    def camera_session(self) -> CaptureSession:
        return CameraSession(self)

    # --- model ---------------------------------------------------------------------------------
    def model_status(self) -> ModelStatus:
        return self.status

    def load_model(self, path: str) -> None:
        """Load a local checkpoint folder; in remote mode this switches Settings back to local."""
        if self.settings.backend != "local":
            self._switching_backend = True
            try:
                self.settings_store.update(backend="local")
            finally:
                self._switching_backend = False
        self._load_local(path)

    def _load_local(self, path: str) -> None:
        s = self.settings
        job = self.service.load(LocalModel(path, PRECISION_BITS.get(s.precision), s.context_length,
                                           s.kv_cache_bits, dict(self.load_options)))  # fmt: skip
        self._load_jobs.add(job.id)
        self.status = ModelStatus("loading", Path(path).name, "", str(path))
        self.model_status_changed.emit(self.status)

    def reload_backend(self) -> None:
        """Load what Settings choose: the remote server, else the remembered local checkpoint."""
        s = self.settings
        if s.backend == "remote":
            self._load_remote()
        elif s.model_path:
            self._load_local(s.model_path)
        elif self.service.is_loaded:
            self.unload_model()

    def _load_remote(self) -> None:
        s = self.settings
        name = s.remote_model or _host(s.remote_url) or "Remote server"
        try:
            if not s.remote_url:
                raise SettingsError("Set the remote server's URL in Settings ▸ Backend.")
            key = s.remote_key()
        except SettingsError as exc:
            self.status = ModelStatus("error", name, "", s.remote_url, message=str(exc))
            self.model_status_changed.emit(self.status)
            return
        job = self.service.load(RemoteModel(s.remote_url, s.remote_model, key))
        self._load_jobs.add(job.id)
        self.status = ModelStatus("loading", name, "remote", s.remote_url)
        self.model_status_changed.emit(self.status)

    def unload_model(self) -> None:
        self.service.unload()

    def _on_load_progress(self, job_id: int, fraction: float, message: str) -> None:
        self.status.progress = fraction
        self.status.message = message
        self.model_status_changed.emit(self.status)

    def _on_model_loaded(self, job_id: int, path: str, info) -> None:
        if info.kind == "remote":
            self.status = ModelStatus("ready", info.name or path, f"remote · {_host(path)}",
                                      path, 1.0, info.context_limit)  # fmt: skip
            self.model_status_changed.emit(self.status)
            self.stats_changed.emit(RunStats(context_limit=self.status.context_limit))
            return
        self.status = ModelStatus("ready", info.name, info.precision, path, 1.0,
                                  info.context_limit)  # fmt: skip
        try:
            self.limits = MediaLimits.from_checkpoint(path)
            self.ingestor.limits = self.limits
        except Exception:  # noqa: BLE001 - keep the defaults when the config has no limits
            pass
        if path != self.settings.model_path:
            self.settings_store.update(model_path=path)
        self.model_status_changed.emit(self.status)
        self.stats_changed.emit(RunStats(context_limit=self.status.context_limit))

    def _on_model_unloaded(self, job_id: int) -> None:
        self.status = ModelStatus()
        self.model_status_changed.emit(self.status)

    def _on_job_failed(self, job_id: int, kind: str, message: str) -> None:
        if job_id in self._load_jobs:
            self.status = ModelStatus(
                "error", self.status.name, "", self.status.path, message=message
            )
            self.model_status_changed.emit(self.status)
        elif job_id in self._transcripts:
            self._transcripts.pop(job_id)
            self.notice.emit(f"Dictation failed: {message}")

    def memory_plan(self, path: str | None = None) -> tuple[list[tuple[str, str]], str]:
        from app.models.catalog import GEMMA_4_12B_IT, memory_plan_for

        s = self.settings
        if path is None and s.backend == "remote":
            return (
                [],
                f"The model runs on the remote server {s.remote_url}: no memory is used here.",
            )
        entry = GEMMA_4_12B_IT.with_load_bits(
            PRECISION_BITS.get(s.precision) or GEMMA_4_12B_IT.load_bits
        )
        try:
            plan = memory_plan_for(entry, path or self.status.path or None, s.context_length,
                                   s.kv_cache_bits)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - no readable config: explain
            return [], f"No memory plan: {exc}"
        return _plan_rows(plan), _plan_verdict(plan)

    def download_offer(self) -> DownloadOffer | None:
        from app.models.catalog import GEMMA_4_12B_IT, estimate_with_memory_plan, memory_plan_for
        from mlx_model.hub import repo_storage_dir

        entry = GEMMA_4_12B_IT
        destination = repo_storage_dir(entry.repo_id)  # the Hugging Face cache, shared with mlx-lm
        probe = destination
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        try:
            size = estimate_with_memory_plan(entry).stored_bytes
            plan = memory_plan_for(
                entry, None, self.settings.context_length, self.settings.kv_cache_bits
            )
            rows, verdict, fits = _plan_rows(plan), _plan_verdict(plan), plan.fits
        except Exception as exc:  # noqa: BLE001
            size, rows, verdict, fits = 0, [], f"Memory plan unavailable: {exc}", True
        bits = entry.effective_bits
        name = f"{entry.name} ({bits}-bit when loaded)" if bits else entry.name
        return DownloadOffer(name, entry.repo_id, size, free, str(destination),
                             rows, verdict, fits)  # fmt: skip

    def start_download(self) -> None:
        from app.models.catalog import GEMMA_4_12B_IT
        from app.models.download import (
            DownloadCancelled,
            DownloadFailed,
            DownloadFinished,
            DownloadProgress,
        )
        from app.models.hub_download import HubCacheDownloader

        def on_event(event) -> None:  # downloading thread; signals queue to the UI thread
            if isinstance(event, DownloadProgress):
                self.download_progress.emit(event.done_bytes, event.total_bytes, event.file)
            elif isinstance(event, DownloadFinished):
                self.download_finished.emit(str(event.model.path), "")
            elif isinstance(event, DownloadFailed):
                self.download_finished.emit("", event.message)
            elif isinstance(event, DownloadCancelled):
                self.download_finished.emit("", "Download cancelled; it resumes where it stopped.")

        # Into the Hugging Face cache, where mlx-lm / mlx-vlm users may already have it.
        self._downloader = HubCacheDownloader(GEMMA_4_12B_IT, on_event=on_event)
        downloader = self._downloader

        def run() -> None:
            try:
                downloader.run()
            except Exception as exc:  # noqa: BLE001 - reported as a failed download
                self.download_finished.emit("", str(exc))

        threading.Thread(target=run, name="model-download", daemon=True).start()

    def cancel_download(self) -> None:
        if self._downloader is not None:
            self._downloader.cancel()

    # --- settings ------------------------------------------------------------------------------
    def setting_fields(self) -> list[SettingField]:
        current = self.settings
        hints = get_type_hints(Settings)
        section_of = {key: section for section, keys in SETTING_SECTIONS.items() for key in keys}
        result = []
        for f in dataclass_fields(Settings):
            annotation = hints[f.name]
            kind, choices = _kind(f.name, annotation)
            label = SETTING_LABELS.get(f.name, f.name.replace("_", " ").capitalize())
            default = getattr(DEFAULTS, f.name)
            help_text = (
                f"Default: {default!r}" if default not in (None, "", ()) else "Default: none"
            )
            if f.name in SETTING_HELP:
                help_text = f"{SETTING_HELP[f.name]} {help_text}"
            result.append(SettingField(f.name, label, getattr(current, f.name), kind, choices,
                                       help=help_text, section=section_of.get(f.name, "Other")))  # fmt: skip
        return result

    def apply_settings(self, values: dict[str, Any]) -> None:
        if values:
            self.settings_store.update(**values)

    def _on_settings_changed(self, changed: set[str]) -> None:
        if self._closing:
            return
        remote_changed = bool(changed & set(REMOTE_FIELDS)) and not self._switching_backend
        if remote_changed and ("backend" in changed or self.settings.backend == "remote"):
            self.reload_backend()
        if "mcp_servers" in changed:
            self.start_mcp()
        if changed & set(SERVER_FIELDS):
            self.apply_server_setting()

    # --- the local OpenAI-compatible server ----------------------------------------------------
    def apply_server_setting(self) -> None:
        """Start, restart or stop the local API server to match Settings (on a worker thread).

        It shares the engine service with the window, so its requests queue behind (and
        stream beside) the chat's; starting it never blocks the UI thread.
        """
        s = self.settings
        with self._server_lock:
            self._server_generation += 1
            generation = self._server_generation
            old, self.server = self.server, None
        if self.server_url:
            self.server_url = ""
            self.server_changed.emit("")

        def work() -> None:
            if old is not None:
                old.stop()
            if not s.server_enabled or self._closing:
                return
            from app.server.config import ServerConfig
            from app.server.runner import ServerThread

            config = ServerConfig(host=s.server_host, port=s.server_port, api_key=s.server_api_key)
            try:
                server = ServerThread(self.service, config).start()
            except Exception as exc:  # noqa: BLE001 - port taken, unsafe host without key...
                self.notice.emit(f"The local API server could not start: {exc}")
                return
            with self._server_lock:
                current = generation == self._server_generation and not self._closing
                if current:
                    self.server = server
            if not current:
                server.stop()
                return
            self._server_started.emit(generation, server.url)

        threading.Thread(target=work, name="api-server-start", daemon=True).start()

    def _on_server_started(self, generation: int, url: str) -> None:
        if generation != self._server_generation or self._closing:
            return
        self.server_url = url
        self.server_changed.emit(url)
        self.notice.emit(f"Local API server listening at {url}")

    # --- MCP tools -----------------------------------------------------------------------------
    def start_mcp(self) -> None:
        """(Re)start the MCP servers in Settings on a worker thread; their tools join the chat."""
        configs = [c for c in self.settings.mcp_configs() if c.enabled]
        with self._mcp_lock:
            self._mcp_generation += 1
            generation = self._mcp_generation
            old, self.mcp = self.mcp, None
        self.controller.tools = None
        self.mcp_status = {c.name: ("connecting", "") for c in configs}
        if self.tool_names:
            self.tool_names = []
            self.tools_changed.emit([])

        def work() -> None:
            if old is not None:
                old.close()
            if not configs:
                return
            manager = MCPManager(
                approve=self._approve_tool_call,
                on_status=lambda name, status, message: self._mcp_event.emit(
                    generation, name, str(status), message
                ),
            )
            with self._mcp_lock:
                current = generation == self._mcp_generation and not self._closing
                if current:
                    self.mcp = manager
            if not current:
                manager.close()
                return
            try:
                manager.start(configs)  # waits until each server is ready or failed
            except Exception as exc:  # noqa: BLE001 - reported; the app goes on without them
                self.notice.emit(f"The MCP servers could not start: {exc}")
            self._mcp_started.emit(generation)

        threading.Thread(target=work, name="mcp-start", daemon=True).start()

    def _register_mcp_tools(self) -> None:
        manager = self.mcp
        registry = ToolRegistry()
        names = manager.register_into(registry) if manager is not None else []
        self.controller.tools = registry if names else None
        if names != self.tool_names:
            self.tool_names = names
            self.tools_changed.emit(list(names))

    def _on_mcp_started(self, generation: int) -> None:
        if generation != self._mcp_generation or self._closing:
            return
        self._register_mcp_tools()
        if self.tool_names:
            self.notice.emit(f"MCP tools ready: {', '.join(self.tool_names)}.")

    def _on_mcp_event(self, generation: int, name: str, status: str, message: str) -> None:
        if generation != self._mcp_generation or self._closing:
            return
        self.mcp_status[name] = (status, message)
        self.mcp_status_changed.emit(name, status, message)
        if status == "failed":
            self.notice.emit(
                f"MCP server “{name}” failed: {message}. Its tools are not offered to Gemma."
            )
            if self.tool_names:  # a server that failed mid-chat: stop offering its tools
                self._register_mcp_tools()

    def _approve_tool_call(self, call: MCPCall) -> bool:
        """Asked on the engine's thread before an untrusted server's tool runs; blocks for the answer."""
        signal = SIGNAL("tool_approval_requested(PyObject)")
        if self._closing or not self.receivers(signal):
            return False  # nobody can ask the user: no call
        request = ToolApproval(call)
        with self._mcp_lock:
            self._approvals.add(request)
        try:
            self.tool_approval_requested.emit(request)
            approved = request.wait(APPROVAL_TIMEOUT_S)
            request.answer(False)  # a timeout counts as no (no-op when already answered)
        finally:
            with self._mcp_lock:
                self._approvals.discard(request)
        self.tool_approval_resolved.emit(request)
        return approved

    def _decline_pending_approvals(self) -> None:
        with self._mcp_lock:
            pending = list(self._approvals)
        for request in pending:
            request.answer(False)

    def shutdown(self) -> None:
        self._closing = True
        self._unsubscribe_settings()
        self._decline_pending_approvals()
        self.cancel_download()
        with self._server_lock:  # the server uses the engine service: stop it first
            self._server_generation += 1
            server, self.server = self.server, None
        if server is not None:
            server.stop()
        self.controller.cancel()
        self.controller.close()
        self.service.shutdown(timeout=10.0)
        with self._mcp_lock:
            manager, self.mcp = self.mcp, None
        if manager is not None:
            manager.close()


def _kind(name: str, annotation: Any) -> tuple[str, tuple[Any, ...]]:
    if get_origin(annotation) is Literal:
        return "choice", get_args(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    if name == "kv_cache_bits":
        return "choice", (None, 8, 4)
    if name == "vision_budget":
        from app.options import IMAGE_BUDGETS

        return "choice", IMAGE_BUDGETS
    if name == "model_path":
        return "dir", ()
    if name == "mcp_servers":
        return "json", ()
    if name.endswith("api_key"):
        return "secret", ()
    if base is bool:
        return "bool", ()
    optional = type(None) in get_args(annotation)
    if base is int:
        return ("optional_int" if optional else "int"), ()
    if base is float:
        return ("optional_float" if optional else "float"), ()
    return ("optional_str" if optional else "str"), ()


def _merge_tool(target: MessageView, card: ToolCardView) -> None:
    for index, existing in enumerate(target.tools):
        if existing.call_id == card.call_id or (not existing.done and existing.name == card.name):
            target.tools[index] = card
            return
    target.tools.append(card)


def _host(url: str) -> str:
    """host:port of a URL, for the status line."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _plan_rows(plan) -> list[tuple[str, str]]:
    return [
        ("Weights", f"{_gb(plan.weights_bytes)} ({plan.weights_label})"),
        ("KV cache", f"{_gb(plan.kv_bytes)} for {plan.context_length:,} tokens"),
        ("Working headroom", _gb(plan.headroom_bytes)),
        ("Total", f"{_gb(plan.total_bytes)} of {_gb(plan.budget_bytes)} available"),
    ]


def _plan_verdict(plan) -> str:
    if plan.fits:
        return f"✓ Fits: {plan.summary()}."
    return (f"✗ Does not fit: {plan.summary()}. Choose 4-bit weights, a shorter context or a "
            "quantized KV cache in Settings.")  # fmt: skip
