"""An in-memory `Backend` with a scripted model: for previews, screenshots and widget tests.

It keeps conversations in dictionaries and "generates" by replaying a reply script on a
QTimer, emitting the same signals, in the same order, as the real `AppBackend`. Nothing
is stored on disk and no model is loaded.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QImage, QPainter

from ui.backend import (
    BUILTIN_PRESETS,
    AttachmentRejected,
    AttachmentView,
    Backend,
    CaptureSession,
    ChatSettings,
    ConversationSummary,
    DownloadOffer,
    MessageView,
    ModelStatus,
    Preset,
    RunStats,
    SettingField,
    TrashedChat,
)

Script = list[tuple[str, Any]]  # ("thinking"|"text", str) or ("tool", ToolCardView)
Replier = Callable[[str, list[AttachmentView]], Script]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".flac", ".ogg"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv"}


def echo_replier(text: str, attachments: list[AttachmentView]) -> Script:
    names = ", ".join(a.name for a in attachments)
    reply = f"You said: {text}" + (f" (with {names})" if names else "")
    return [("text", word + " ") for word in reply.split(" ")]


def synthetic_frame(index: int, width: int = 320, height: int = 240) -> QImage:
    """A moving colour test pattern standing in for a camera frame."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor.fromHsv((index * 7) % 360, 120, 200))
    painter = QPainter(image)
    painter.setBrush(QColor("white"))
    x = int((math.sin(index / 8) + 1) / 2 * (width - 60))
    painter.drawEllipse(x, height // 2 - 30, 60, 60)
    painter.end()
    return image


class FakeMicSession(CaptureSession):
    """Pretends to record: levels follow a sine, stop yields an audio attachment."""

    def __init__(self, limit_s: float = 30.0, device_name: str = "Demo microphone") -> None:
        super().__init__()
        self.limit_s = limit_s
        self.device_name = device_name
        self._timer = QTimer(self, interval=50)
        self._timer.timeout.connect(self._tick)
        self._started = 0.0
        self._levels: list[float] = []

    def start(self) -> None:
        self._started = time.monotonic()
        self._timer.start()

    def _tick(self) -> None:
        elapsed = time.monotonic() - self._started
        level = abs(math.sin(elapsed * 5)) * 0.8
        self._levels.append(level)
        self.level.emit(level)
        self.remaining.emit(max(0.0, self.limit_s - elapsed))
        if elapsed >= self.limit_s:
            self.stop()

    def stop(self) -> None:
        self._timer.stop()
        duration = time.monotonic() - self._started
        self.finished.emit(AttachmentView("audio", "Recording.wav", duration_s=duration,
                                          waveform=(self._levels or [0.3])[-64:]))  # fmt: skip

    def cancel(self) -> None:
        self._timer.stop()
        self.finished.emit(None)


class FakeCameraSession(CaptureSession):
    def __init__(self, limit_s: float = 60.0, device_name: str = "Demo camera") -> None:
        super().__init__()
        self.limit_s = limit_s
        self.device_name = device_name
        self._timer = QTimer(self, interval=66)
        self._timer.timeout.connect(self._tick)
        self._index = 0
        self._recording_since: float | None = None
        self._frames: list[QImage] = []

    def start(self) -> None:
        self._timer.start()

    def record(self) -> None:
        self._recording_since = time.monotonic()

    def _tick(self) -> None:
        self._index += 1
        frame = synthetic_frame(self._index)
        self.frame.emit(frame)
        if self._recording_since is not None:
            if self._index % 5 == 0:
                self._frames.append(frame)
            elapsed = time.monotonic() - self._recording_since
            self.remaining.emit(max(0.0, self.limit_s - elapsed))
            if elapsed >= self.limit_s:
                self.stop()

    def stop(self) -> None:
        self._timer.stop()
        since = self._recording_since or time.monotonic()
        frames = self._frames or [synthetic_frame(1)]
        self.finished.emit(AttachmentView("video", "Clip.mp4", duration_s=time.monotonic() - since,
                                          frames=frames[:: max(1, len(frames) // 6)][:6]))  # fmt: skip

    def cancel(self) -> None:
        self._timer.stop()
        self.finished.emit(None)


class MemoryBackend(Backend):
    def __init__(self, replier: Replier = echo_replier, chunk_interval_ms: int = 5,
                 model: ModelStatus | None = None) -> None:  # fmt: skip
        super().__init__()
        self.replier = replier
        self.chunk_interval_ms = chunk_interval_ms
        self.status = model or ModelStatus("ready", "Gemma 4 12B", "4-bit", "/models/gemma-4-12b",
                                           context_limit=8192)  # fmt: skip
        self.titles: dict[str, str] = {}
        self.updated: dict[str, float] = {}
        self.store: dict[str, list[MessageView]] = {}
        self.streams: dict[str, tuple[MessageView, list, QTimer]] = {}
        self.sent: list[tuple[str, str, list[AttachmentView], int]] = []
        self.settings_values: dict[str, Any] = {"thinking": False, "temperature": None,
                                                "max_tokens": 4096, "theme": "system",
                                                "mic_device": None, "camera_device": None}  # fmt: skip
        self.offer = DownloadOffer("Gemma 4 12B (4-bit MLX)", "google/gemma-4-12b", 7_300_000_000,
                                   120_000_000_000, "~/Library/Application Support/Gemma Desk/models",
                                   [("Weights", "6.9 GB"), ("KV cache (8192 tokens)", "1.6 GB"),
                                    ("Headroom", "1.0 GB"), ("Total / budget", "9.5 GB of 12.0 GB")],
                                   "Fits on this Mac with room for your other apps.")  # fmt: skip
        self._ids = itertools.count(1)
        self._mic_limit = 30.0
        self._started: dict[str, float] = {}  # answer id -> when it began streaming
        self.chat: dict[str, ChatSettings] = {}
        self.own_presets: list[Preset] = []
        self.trashed: dict[str, tuple[str, list[MessageView], float]] = {}
        self.last_deleted = ""
        # (conversation, index of the first message of a branch) -> [versions' tails], shown
        self.branches: dict[tuple[str, int], tuple[list[list[MessageView]], int]] = {}
        self.devices = (["Demo microphone", "USB headset"], ["Demo camera"])

    # conversations ---------------------------------------------------------------------
    def _new_id(self) -> str:
        return str(next(self._ids))

    def conversations(self, query: str = "") -> list[ConversationSummary]:
        rows = []
        for cid, title in self.titles.items():
            text = " ".join([title] + [m.text for m in self.store[cid]]).lower()
            if query and query.lower() not in text:
                continue
            rows.append(ConversationSummary(cid, title, self.updated[cid], cid in self.streams))
        return sorted(rows, key=lambda row: (-row.updated_at, -int(row.id)))

    def new_conversation(self, preset: str = "") -> str:
        cid = self._new_id()
        self.titles[cid] = ""
        self.store[cid] = []
        self.updated[cid] = time.time()
        chosen = next((p for p in self.presets() if p.name == preset), None)
        self.chat[cid] = ChatSettings(
            chosen.system_prompt if chosen else None, chosen.chat_options() if chosen else {}
        )
        self.conversations_changed.emit()
        return cid

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        self.titles[conversation_id] = title
        self.conversations_changed.emit()

    def delete_conversation(self, conversation_id: str) -> None:
        self.stop(conversation_id)
        title = self.titles.pop(conversation_id, "")
        self.trashed[conversation_id] = (title, self.store.pop(conversation_id, []), time.time())
        self.last_deleted = conversation_id
        self.conversations_changed.emit()

    def undo_delete(self) -> str:
        restored, self.last_deleted = self.last_deleted, ""
        if restored in self.trashed:
            self.restore_conversation(restored)
            return restored
        return ""

    def trash(self) -> list[TrashedChat]:
        return [TrashedChat(cid, title, when, 30) for cid, (title, _, when) in
                sorted(self.trashed.items(), key=lambda item: -item[1][2])]  # fmt: skip

    def restore_conversation(self, conversation_id: str) -> None:
        title, messages, _ = self.trashed.pop(conversation_id)
        self.titles[conversation_id], self.store[conversation_id] = title, messages
        self.updated.setdefault(conversation_id, time.time())
        self.conversations_changed.emit()

    def delete_forever(self, conversation_id: str = "") -> None:
        for cid in [conversation_id] if conversation_id else list(self.trashed):
            self.trashed.pop(cid, None)

    def messages(self, conversation_id: str) -> list[MessageView]:
        views = [MessageView(**vars(m)) for m in self.store.get(conversation_id, [])]
        for (cid, index), (tails, shown) in self.branches.items():
            if cid == conversation_id and index < len(views):
                views[index].version, views[index].versions = shown + 1, len(tails)
        return views

    def switch_version(self, conversation_id: str, message_id: str, step: int) -> None:
        messages = self.store[conversation_id]
        index = next(i for i, m in enumerate(messages) if m.id == message_id)
        tails, shown = self.branches[(conversation_id, index)]
        target = max(0, min(len(tails) - 1, shown + step))
        tails[shown] = messages[index:]
        messages[index:] = tails[target]
        self.branches[(conversation_id, index)] = (tails, target)
        self.conversation_reset.emit(conversation_id)

    def presets(self) -> list[Preset]:
        return [*BUILTIN_PRESETS, *self.own_presets]

    def save_preset(self, preset: Preset, replacing: str | None = None) -> None:
        if not preset.name.strip() or any(p.name == preset.name for p in BUILTIN_PRESETS):
            raise ValueError("Choose another name for the assistant.")
        self.own_presets = [p for p in self.own_presets if p.name not in (replacing, preset.name)]
        self.own_presets.append(preset)

    def delete_preset(self, name: str) -> None:
        self.own_presets = [p for p in self.own_presets if p.name != name]

    def chat_settings(self, conversation_id: str) -> ChatSettings:
        return self.chat.setdefault(conversation_id, ChatSettings())

    def set_chat_settings(self, conversation_id: str, **changes: Any) -> None:
        settings = self.chat_settings(conversation_id)
        for name, value in changes.items():
            if name == "system_prompt":
                settings.system_prompt = value
            elif value is None:
                settings.options.pop(name, None)
            else:
                settings.options[name] = value

    def microphones(self) -> tuple[list[str], str]:
        return list(self.devices[0]), ""

    def cameras(self) -> list[str]:
        return list(self.devices[1])

    def add_message(self, conversation_id: str, message: MessageView) -> None:
        """Put a finished message straight into a conversation (previews and screenshots)."""
        self.store[conversation_id].append(message)

    # generation -------------------------------------------------------------------------
    def send(self, conversation_id, text, attachments, vision_budget=280) -> None:
        self.sent.append((conversation_id, text, list(attachments), vision_budget))
        user = MessageView(self._new_id(), "user", text, attachments=list(attachments))
        self.store[conversation_id].append(user)
        if not self.titles[conversation_id]:
            self.titles[conversation_id] = text[:40] or "Attachment"
        self.updated[conversation_id] = time.time()
        self.message_added.emit(conversation_id, user)
        self.conversations_changed.emit()
        self._generate(conversation_id, text, list(attachments))

    def _generate(self, conversation_id: str, text: str, attachments: list[AttachmentView]) -> None:
        answer = MessageView(self._new_id(), "assistant", streaming=True)
        self.store[conversation_id].append(answer)
        script = list(self.replier(text, attachments))
        timer = QTimer(self, interval=self.chunk_interval_ms)
        self.streams[conversation_id] = (answer, script, timer)
        timer.timeout.connect(lambda: self._step(conversation_id))
        self.message_added.emit(conversation_id, MessageView(**vars(answer)))
        self.generating_changed.emit(conversation_id, True)
        self._started[answer.id] = time.monotonic()
        timer.start()

    def _step(self, conversation_id: str) -> None:
        answer, script, timer = self.streams[conversation_id]
        if not script:
            self._finish(conversation_id, "end_of_turn")
            return
        kind, value = script.pop(0)
        if kind == "tool":
            answer.tools.append(value)
            self.tool_event.emit(conversation_id, answer.id, value)
            return
        if kind == "thinking":
            answer.thinking += value
        else:
            answer.text += value
        self.delta.emit(conversation_id, answer.id, kind, value)

    def _finish(self, conversation_id: str, reason: str) -> None:
        answer, script, timer = self.streams.pop(conversation_id)
        timer.stop()
        timer.deleteLater()
        started = self._started.pop(answer.id, time.monotonic())
        answer.streaming = False
        from app.engines.contract import GenerationStats

        tokens = max(1, len(answer.text.split()))
        elapsed = max(1e-3, time.monotonic() - started)
        answer.stats = GenerationStats(generated_tokens=tokens, decode_tps=tokens / elapsed,
                                       context_tokens=50 * len(self.store[conversation_id]),
                                       context_limit=self.status.context_limit, stop_reason=reason)  # fmt: skip
        final = next(v for v in self.messages(conversation_id) if v.id == answer.id)
        self.message_finished.emit(conversation_id, answer.id, final)
        self.generating_changed.emit(conversation_id, False)
        self.stats_changed.emit(RunStats(answer.stats.decode_tps, answer.stats.context_tokens,
                                         self.status.context_limit, 7_100_000_000))  # fmt: skip
        self.conversations_changed.emit()

    def stop(self, conversation_id: str) -> None:
        if conversation_id in self.streams:
            self._finish(conversation_id, "cancelled")

    def is_generating(self, conversation_id: str) -> bool:
        return conversation_id in self.streams

    def _truncate_from(self, conversation_id: str, message_id: str) -> list[MessageView]:
        """Keep the messages from `message_id` on as an older version; start a new one."""
        messages = self.store[conversation_id]
        index = next(i for i, m in enumerate(messages) if m.id == message_id)
        removed = messages[index:]
        del messages[index:]
        tails, shown = self.branches.get((conversation_id, index), ([removed], 0))
        tails[shown] = removed
        tails.append([])  # the new version, filled as it is written
        self.branches[(conversation_id, index)] = (tails, len(tails) - 1)
        return removed

    def regenerate(self, conversation_id: str, message_id: str) -> None:
        self.stop(conversation_id)
        self._truncate_from(conversation_id, message_id)
        user = next(m for m in reversed(self.store[conversation_id]) if m.role == "user")
        self.conversation_reset.emit(conversation_id)
        self._generate(conversation_id, user.text, user.attachments)

    def edit_and_resend(self, conversation_id: str, message_id: str, text: str) -> None:
        self.stop(conversation_id)
        old = self._truncate_from(conversation_id, message_id)[0]
        user = MessageView(self._new_id(), "user", text, attachments=old.attachments)
        self.store[conversation_id].append(user)
        self.conversation_reset.emit(conversation_id)
        self._generate(conversation_id, text, old.attachments)

    def transcribe(self, attachment: AttachmentView) -> None:
        QTimer.singleShot(
            10, lambda: self.transcript_ready.emit(f"(transcript of {attachment.name})")
        )

    # attachments --------------------------------------------------------------------------
    def ingest_path(self, path: Path) -> AttachmentView:
        path = Path(path)
        if not path.is_file():
            raise AttachmentRejected(path.name, "was not found.")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            image = QImage(str(path))
            if image.isNull():
                raise AttachmentRejected(path.name, "is not a readable image.")
            return AttachmentView("image", path.name, path, path.stat().st_size,
                                  width=image.width(), height=image.height(), thumbnail=image)  # fmt: skip
        if suffix in AUDIO_SUFFIXES:
            return AttachmentView("audio", path.name, path, path.stat().st_size, duration_s=3.0,
                                  waveform=[abs(math.sin(i / 3)) for i in range(48)])  # fmt: skip
        if suffix in VIDEO_SUFFIXES:
            return AttachmentView("video", path.name, path, path.stat().st_size, duration_s=4.0,
                                  frames=[synthetic_frame(i * 9) for i in range(4)])  # fmt: skip
        raise AttachmentRejected(path.name, "is not an image, audio or video file Gemma can read.")

    def ingest_image(self, image: QImage, name: str = "Pasted image.png") -> AttachmentView:
        return AttachmentView("image", name, None, 0, width=image.width(), height=image.height(),
                              thumbnail=image)  # fmt: skip

    def microphone_session(self, device: str | None = None) -> CaptureSession:
        return FakeMicSession(self._mic_limit, device or self.settings_values["mic_device"]
                              or self.devices[0][0])  # fmt: skip

    def camera_session(self, device: str | None = None) -> CaptureSession:
        return FakeCameraSession(device_name=device or self.devices[1][0])

    # model ------------------------------------------------------------------------------------
    def model_status(self) -> ModelStatus:
        return self.status

    def load_model(self, path: str) -> None:
        self.status = ModelStatus("ready", Path(path).name, "bf16", path, context_limit=8192)
        self.model_status_changed.emit(self.status)

    def unload_model(self) -> None:
        self.status = ModelStatus()
        self.model_status_changed.emit(self.status)

    def memory_plan(self, path: str | None = None) -> tuple[list[tuple[str, str]], str]:
        return self.offer.memory_plan, self.offer.plan_verdict

    def download_offer(self) -> DownloadOffer | None:
        return self.offer

    def start_download(self) -> None:
        self.download_progress.emit(0, self.offer.size_bytes, "connecting")

    def cancel_download(self) -> None:
        self.download_finished.emit("", "Download cancelled.")

    # settings -----------------------------------------------------------------------------------
    def setting_fields(self) -> list[SettingField]:
        v = self.settings_values
        return [
            SettingField("thinking", "Show thinking", v["thinking"], "bool", section="Generation"),
            SettingField(
                "temperature",
                "Temperature",
                v["temperature"],
                "float",
                minimum=0,
                maximum=5,
                section="Generation",
            ),  # fmt: skip
            SettingField(
                "max_tokens",
                "Maximum answer length",
                v["max_tokens"],
                "int",
                minimum=1,
                maximum=1_048_576,
                section="Generation",
            ),  # fmt: skip
            SettingField(
                "mic_device", "Microphone", v["mic_device"], "optional_str", section="Devices"
            ),  # fmt: skip
            SettingField(
                "camera_device", "Camera", v["camera_device"], "optional_str", section="Devices"
            ),  # fmt: skip
            SettingField(
                "theme",
                "Appearance",
                v["theme"],
                "choice",
                ("system", "light", "dark"),
                section="Interface",
            ),  # fmt: skip
        ]

    def apply_settings(self, values: dict[str, Any]) -> None:
        self.settings_values.update(values)

    def shutdown(self) -> None:
        for conversation_id in list(self.streams):
            self.stop(conversation_id)
