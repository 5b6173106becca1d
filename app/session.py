"""The application core: one `AppSession`, built the same way by every front end.

The GUI, `gemma-desk chat`, `gemma-desk generate` and `gemma-desk serve` each make one
`AppSession(data_dir)`: the storage, the settings, the engine service (local model or
remote server, as the settings say), the conversation controller, the media ingestor, the
tools (MCP servers from the settings, with the user's approval), the local API server and
the model download. So a setting or a conversation means the same everywhere.

What happens later is told to `subscribe(callback)` subscribers as `SessionEvent`s (from
worker threads; the GUI queues them to its thread). A tool that needs the user's yes
waits for an answer through `ApprovalRequested`: the front end that can ask calls
`approval.answer(...)`; with no front end to ask (`can_ask` False), the answer is no.

Memory: the settings' `keep_alive` (or a command line's `--keep-alive`, for that run)
unloads a local model left idle that long; the next message loads it again. Low memory
(`memory_pressure(level)`, from `app.memory_pressure` on a Mac once a front end calls
`watch_memory_pressure()`) drops the prompt caches first and, when critical, unloads the
model too. Each says so in a `Notice`, and the model status reads "unloaded".
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.attachments import AttachmentIngestor, MediaLimits
from app.conversation_controller import ConversationController
from app.engine_service import (
    CachesDropped,
    EngineOutput,
    EngineService,
    Job,
    JobDone,
    JobFailed,
    LoadProgress,
    ModelLoaded,
    ModelReloading,
    ModelUnloaded,
    ServiceEvent,
)
from app.engines.contract import EngineFactory, EngineSpec, LocalModel, RemoteModel, TextDelta
from app.engines.factory import open_engine
from app.keep_alive import format_keep_alive, parse_keep_alive
from app.keychain import plain_http_warning
from app.mcp_client import MCPManager
from app.options import GenerationOptions
from app.presets import PresetStore
from app.settings import REMOTE_FIELDS, SERVER_FIELDS, Settings, SettingsError, SettingsStore
from app.storage import Storage, open_storage
from app.storage.conversations import Conversation, StorageError
from app.subscribers import Subscribers
from app.tools.approval import APPROVAL_TIMEOUT_S, Approval, ToolApproval
from app.tools.registry import ToolRegistry
from app.views import ModelStatus

log = logging.getLogger(__name__)


# -- session events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A sentence for the user (status line, terminal)."""

    text: str


@dataclass(frozen=True)
class ToolsChanged:
    names: tuple[str, ...]  # the tools the chat now offers


@dataclass(frozen=True)
class MCPStatusChanged:
    server: str
    status: str  # an `app.mcp_client.MCPStatus` value
    message: str


@dataclass(frozen=True)
class ServerChanged:
    url: str  # the local API server's base URL, "" when it is off


@dataclass(frozen=True)
class ApprovalRequested:
    approval: ToolApproval


@dataclass(frozen=True)
class ApprovalResolved:
    approval: ToolApproval


@dataclass(frozen=True)
class ModelStatusChanged:
    """The model is loading (with progress), ready, failed to load, or gone."""

    status: ModelStatus


SessionEvent = (
    Notice
    | ToolsChanged
    | MCPStatusChanged
    | ServerChanged
    | ApprovalRequested
    | ApprovalResolved
    | ModelStatusChanged
)


class AppSession:
    """The wired application; see the module docstring.

    `engine_factory` replaces `open_engine` (tests); `tuning` adds `Engine.load` keywords
    for local models (tests keep MLX's process-wide limits off with it).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        storage: Storage | None = None,
        engine_factory: EngineFactory | None = None,
        tuning: Mapping[str, Any] | None = None,
    ) -> None:
        self._owns_storage = storage is None
        self.storage = storage or open_storage(data_dir)
        self.settings_store = SettingsStore(self.storage.db)
        self.service = EngineService(engine_factory or open_engine)
        self.controller = ConversationController(self.storage, self.service, self.settings_store)
        self.presets = PresetStore(self.storage.db)
        self.last_deleted: int | None = None  # the chat Undo brings back
        self.limits = MediaLimits.defaults()
        self.ingestor = AttachmentIngestor(self.storage.media, self.limits)
        self.tuning = dict(tuning or {})
        self.can_ask = False  # a front end answers `ApprovalRequested`
        self.mcp: MCPManager | None = None
        self.mcp_status: dict[str, tuple[str, str]] = {}  # server name -> (status, message)
        self.tool_names: tuple[str, ...] = ()
        self.builtin_tools: Any = None  # an `app.tools.builtin` registry offered beside MCP's
        self.server: Any = None  # app.server.runner.ServerThread while the API server runs
        self.server_url = ""
        self.model_status = ModelStatus()
        self._load_jobs: set[int] = set()
        self._reloads: set[int] = set()  # generations that load their unloaded model first
        self._transcripts: dict[int, _Transcript] = {}
        self._subscribers: Subscribers[SessionEvent] = Subscribers("session")
        self._lock = threading.RLock()
        self._mcp_generation = 0
        self._server_generation = 0
        self._approvals: set[ToolApproval] = set()
        self._downloader: Any = None
        self._remember_next_load = False
        self._switching_backend = False
        self._closing = False
        self._told: set[str] = set()  # load notices already shown (each is told once)
        self._keep_alive_override: str | None = None  # a command line's --keep-alive
        self._pressure_monitor: Any = None
        self._apply_keep_alive()
        self._unsubscribe_service = self.service.subscribe(self._on_service_event)
        self._unsubscribe_settings = self.settings_store.subscribe(
            lambda _settings, changed: self._on_settings_changed(set(changed))
        )

    # -- state and events -------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.settings_store.settings

    def subscribe(self, callback: Callable[[SessionEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` for every session event (any thread); returns an unsubscribe."""
        return self._subscribers.subscribe(callback)

    def _emit(self, event: SessionEvent) -> None:
        self._subscribers.emit(event)

    def generation_options(self, **overrides: Any) -> GenerationOptions:
        """The settings' generation options with the overrides that are not None."""
        return self.settings.generation_options().merged(overrides)

    def apply_settings(self, values: Mapping[str, Any]) -> None:
        """Change settings (validated; `SettingsError` names a bad one); the session reacts."""
        if values:
            self.settings_store.update(**values)

    def start(self, model_path: str | None = None) -> Job | None:
        """What the desktop app does when it opens: load the model (`model_path`, given on the
        command line, else the settings' choice), start the MCP servers and the API server
        the settings ask for. Returns the load job, if any."""
        if model_path:
            job = self.load_local(model_path, remember=True)
        else:
            job = self.load_from_settings()
        if self.settings.mcp_servers:
            self.start_mcp()
        if self.settings.server_enabled:
            self.apply_server_setting()
        self.recover_recordings()
        return job

    # -- the model ----------------------------------------------------------------------------

    def load_local(self, path: str, *, remember: bool = False, **overrides: Any) -> Job:
        """Load a checkpoint folder with the settings' precision and context (`overrides`:
        `LocalModel` fields for this load only, e.g. the CLI's `bits`).

        In remote mode this switches the settings back to local; `remember` makes it the
        settings' model once it has loaded (the GUI's choice; the CLI's `--model` is not).
        """
        if self.settings.backend != "local":
            self._switching_backend = True
            try:
                self.settings_store.update(backend="local")
            finally:
                self._switching_backend = False
        spec = dataclasses.replace(self.settings.local_model(path), tuning=self.tuning, **overrides)
        self._remember_next_load = remember
        return self._load(spec)

    def load_remote(self, url: str = "", model: str = "") -> Job:
        """Connect to the remote server the settings name, or to `url` (and `model`) for this
        load only, with the settings' key (`SettingsError` without a URL, or a missing key)."""
        settings = self.settings
        if url:
            settings = dataclasses.replace(settings, remote_url=url, remote_model=model)
        return self._load(settings.remote_spec())

    def load_from_settings(self) -> Job | None:
        """Load what the settings choose: the remote server, else the remembered checkpoint.

        None when there is nothing to load (or the remote settings are incomplete: the
        model status says why).
        """
        s = self.settings
        if s.backend == "remote":
            try:
                return self.load_remote()
            except SettingsError as exc:
                name = _host(s.remote_url) or "Remote server"
                self._set_status(ModelStatus("error", name, "", s.remote_url, message=str(exc)))
                return None
        if s.model_path:
            return self.load_local(s.model_path)
        if self.service.is_loaded:
            return self.service.unload()
        return None

    def unload(self) -> Job:
        return self.service.unload()

    def _load(self, spec: EngineSpec) -> Job:
        if isinstance(spec, RemoteModel) and spec.api_key:
            warning = plain_http_warning(spec.url, "The remote API key")
            if warning:  # said before the first request carries the key
                self._emit(Notice(warning))
        job = self.service.load(spec)
        self._load_jobs.add(job.id)
        if isinstance(spec, LocalModel):
            status = ModelStatus("loading", Path(spec.path).name, "", spec.path)
        else:
            status = ModelStatus("loading", spec.model or _host(spec.url), "remote", spec.url)
        self._set_status(status)
        return job

    def _set_status(self, status: ModelStatus) -> None:
        self.model_status = status
        self._emit(ModelStatusChanged(dataclasses.replace(status)))

    # -- memory: keep-alive and memory pressure ----------------------------------------------

    def set_keep_alive(self, keep_alive: str) -> None:
        """Use this keep-alive (`app.keep_alive` syntax) instead of the settings' for this run."""
        parse_keep_alive(keep_alive)  # KeepAliveError names what is accepted
        self._keep_alive_override = keep_alive
        self._apply_keep_alive()

    def _apply_keep_alive(self) -> None:
        self.service.set_keep_alive(
            parse_keep_alive(self._keep_alive_override or self.settings.keep_alive)
        )

    def memory_pressure(self, level: str) -> None:
        """The system says memory is low: "warning" drops the prompt caches; "critical" does
        that first, then unloads the model until the next message ("normal": nothing)."""
        if level in ("warning", "critical") and not self._closing:
            self.service.relieve_memory(critical=level == "critical")

    def watch_memory_pressure(self) -> None:
        """Follow the system's memory-pressure notifications (a Mac; elsewhere nothing)."""
        from app.memory_pressure import start_monitor

        if self._pressure_monitor is None:
            self._pressure_monitor = start_monitor(self.memory_pressure)

    def _on_memory_event(self, event: ServiceEvent) -> None:
        status = self.model_status
        if isinstance(event, ModelUnloaded):
            why = (
                f"after {format_keep_alive(self.service.keep_alive)} idle"
                if event.reason == "idle"
                else "because memory is low"
            )
            self._set_status(
                dataclasses.replace(
                    status, state="unloaded", message="It loads again with your next message."
                )
            )
            self._emit(
                Notice(f"Unloaded {status.name} {why}; it loads again with your next message.")
            )
        elif isinstance(event, ModelReloading):
            self._load_jobs.add(event.job_id)
            self._reloads.add(event.job_id)
            self._set_status(dataclasses.replace(status, state="loading", progress=0.0))
            self._emit(Notice(f"Loading {status.name} again…"))
        elif isinstance(event, CachesDropped):
            size = event.bytes_freed
            freed = f" ({size / 1e9:.1f} GB)" if size >= 1e8 else f" ({size / 1e6:.0f} MB)"
            freed = freed if size else ""
            self._emit(Notice(f"Memory is low: dropped the saved prompt caches{freed}."))

    def transcribe(self, audio_path: str | Path, on_done: Callable[[str, str | None], None]) -> Job:
        """Ask the model for a transcript of a recording (dictation; no conversation is kept).

        `on_done(text, error)` is called once it is over (error None when it went well).
        """
        content = [
            {"type": "audio", "path": str(audio_path)},
            {"type": "text", "text": TRANSCRIBE_PROMPT},
        ]
        options = GenerationOptions(max_tokens=self.settings.max_tokens)
        with self._lock:  # registered before any event of the job can arrive
            job = self.service.generate([{"role": "user", "content": content}], options=options)
            self._transcripts[job.id] = _Transcript(on_done)
        return job

    def _on_service_event(self, event: ServiceEvent) -> None:
        unloaded = isinstance(event, ModelUnloaded) and event.reason != "requested"
        if unloaded or isinstance(event, ModelReloading | CachesDropped):
            self._on_memory_event(event)
            return
        with self._lock:
            transcript = self._transcripts.get(event.job_id)
        if transcript is not None:
            transcript.add(event)
            if isinstance(event, JobDone):
                self._transcripts.pop(event.job_id, None)
            if event.job_id not in self._load_jobs:  # (a dictation may reload the model first)
                return
        if isinstance(event, ModelUnloaded) and event.job_id not in self._load_jobs:
            self._set_status(ModelStatus())
        if event.job_id not in self._load_jobs:
            return
        status = self.model_status
        if isinstance(event, LoadProgress):
            self._set_status(
                dataclasses.replace(status, progress=event.fraction, message=event.message)
            )
        elif isinstance(event, ModelLoaded):
            info = event.info
            precision = f"remote · {_host(event.path)}" if info.kind == "remote" else info.precision
            if info.drafter:  # speculative decoding with the model's assistant
                precision += " · faster answers"
            self._set_status(
                ModelStatus(
                    "ready", info.name or event.path, precision, event.path, 1.0, info.context_limit
                )
            )
            if info.kind == "local":
                self._loaded_local(event.path)
            else:
                self.ingestor.count_tokens = self.ingestor.processor_config = None
            for notice in info.notices:  # e.g. a drafter left out or a precision mismatch
                if notice not in self._told:
                    self._told.add(notice)
                    self._emit(Notice(notice))
            if event.job_id in self._reloads:  # the generation goes on; its failures are its own
                self._reloads.discard(event.job_id)
                self._load_jobs.discard(event.job_id)
        elif isinstance(event, JobFailed):
            self._set_status(
                ModelStatus("error", status.name, "", status.path, message=event.message)
            )
        elif isinstance(event, JobDone):
            self._load_jobs.discard(event.job_id)
            self._reloads.discard(event.job_id)

    def _loaded_local(self, path: str) -> None:
        try:  # the checkpoint's own media limits (audio length from its processor config)
            self.limits = MediaLimits.from_checkpoint(path)
            self.ingestor.limits = self.limits
        except Exception:  # noqa: BLE001 - keep the defaults when the config has no limits
            pass
        try:  # documents are counted with its tokenizer, scanned pages sized for its images
            from app.inputs.ingest import token_counter_for
            from mlx_model.processing import ProcessorConfig

            self.ingestor.processor_config = ProcessorConfig.from_pretrained(path)
            self.ingestor.count_tokens = token_counter_for(path)
        except Exception:  # noqa: BLE001 - estimated counts and default sizes then
            self.ingestor.count_tokens = self.ingestor.processor_config = None
        if self._remember_next_load and path != self.settings.model_path:
            self._remember_next_load = False
            self.settings_store.update(model_path=path)

    def _on_settings_changed(self, changed: set[str]) -> None:
        if self._closing:
            return
        remote_changed = bool(changed & set(REMOTE_FIELDS)) and not self._switching_backend
        if remote_changed and ("backend" in changed or self.settings.backend == "remote"):
            self.load_from_settings()
        if "mcp_servers" in changed:
            self.start_mcp()
        elif "mcp_allowed_tools" in changed and self.mcp is not None:
            self.mcp.always_allowed = set(self.settings.mcp_allowed_tools)
        if "keep_alive" in changed:
            self._apply_keep_alive()
        if changed & set(SERVER_FIELDS):
            self.apply_server_setting()

    # -- tools: MCP servers and approvals ------------------------------------------------------

    def start_mcp(self, *, wait: bool = False) -> None:
        """(Re)start the settings' MCP servers (on a worker thread unless `wait`); their tools
        join every chat once ready (`ToolsChanged`)."""
        configs = [c for c in self.settings.mcp_configs() if c.enabled]
        for config in configs:
            warning = config.headers and plain_http_warning(
                config.url, f"The headers of the MCP server “{config.name}”"
            )
            if warning:
                self._emit(Notice(warning))
        with self._lock:
            self._mcp_generation += 1
            generation = self._mcp_generation
            old, self.mcp = self.mcp, None
        self.mcp_status = {c.name: ("connecting", "") for c in configs}
        self._register_mcp_tools()  # the built-in tools stay while the servers start

        def report(name: str, status: Any, message: str) -> None:
            if generation != self._mcp_generation or self._closing:
                return
            self.mcp_status[name] = (str(status), message)
            self._emit(MCPStatusChanged(name, str(status), message))
            if str(status) == "failed":
                self._emit(
                    Notice(
                        f"MCP server “{name}” failed: {message}. Its tools are not offered to Gemma."
                    )
                )
                if self.tool_names:  # a server that failed mid-chat: stop offering its tools
                    self._register_mcp_tools()

        def work() -> None:
            if old is not None:
                old.close()
            if not configs:
                return
            manager = MCPManager(
                approve=self._ask,
                on_status=report,
                always_allowed=self.settings.mcp_allowed_tools,
                on_always_allow=self._always_allow_tool,
            )
            with self._lock:
                current = generation == self._mcp_generation and not self._closing
                if current:
                    self.mcp = manager
            if not current:
                manager.close()
                return
            try:
                manager.start(configs)  # waits until each server is ready or failed
            except Exception as exc:  # noqa: BLE001 - reported; the app goes on without them
                self._emit(Notice(f"The MCP servers could not start: {exc}"))
            if generation == self._mcp_generation and not self._closing:
                self._register_mcp_tools()
                if self.tool_names:
                    self._emit(Notice(f"MCP tools ready: {', '.join(self.tool_names)}."))

        if wait:
            work()
        else:
            threading.Thread(target=work, name="mcp-start", daemon=True).start()

    def offer_builtin_tools(self, folders: list[str | Path] | None) -> None:
        """Offer the built-in tools (date, calculator; reading files in `folders`) to every
        chat, with the same approval as MCP tools; None stops offering them."""
        from app.tools.builtin import builtin_registry

        self.builtin_tools = (
            None if folders is None else builtin_registry(folders, consent=self._approve)
        )
        self._register_mcp_tools()

    def _register_mcp_tools(self) -> None:
        registry = ToolRegistry(consent=self._approve)
        for tool in self.builtin_tools.tools.values() if self.builtin_tools else ():
            registry.register(tool)
        manager = self.mcp
        if manager is not None:
            manager.register_into(registry)
        self.controller.tools = registry if len(registry) else None
        self._set_tools(tuple(registry.tools))

    def _set_tools(self, names: tuple[str, ...]) -> None:
        if names != self.tool_names:
            self.tool_names = names
            self._emit(ToolsChanged(names))

    def _approve(self, call: Any) -> bool:
        """The consent of the built-in tools (reading a file): asked like an MCP tool's."""
        return self._ask(call) is not Approval.DENY

    def _ask(self, call: Any) -> Approval:
        """Asked on the engine thread before a tool that needs consent runs (an untrusted MCP
        server's, or reading a file); blocks for the user's answer."""
        if self._closing or not self.can_ask:
            return Approval.DENY  # nobody can ask the user: no call
        approval = ToolApproval(call)
        with self._lock:
            self._approvals.add(approval)
        try:
            self._emit(ApprovalRequested(approval))
            approval.wait(APPROVAL_TIMEOUT_S)
            approval.answer(False)  # a timeout counts as no (no-op when already answered)
        finally:
            with self._lock:
                self._approvals.discard(approval)
        self._emit(ApprovalResolved(approval))
        return approval.decision()

    def _always_allow_tool(self, key: str) -> None:
        """Remember "always allow" for an MCP tool ("server/tool"); called on the engine thread."""
        allowed = self.settings.mcp_allowed_tools
        if key not in allowed:
            self.settings_store.update(mcp_allowed_tools=(*allowed, key))

    def decline_pending_approvals(self) -> None:
        """Answer no to every waiting approval (the user stopped the answer, or the app quits)."""
        with self._lock:
            pending = list(self._approvals)
        for approval in pending:
            approval.answer(False)

    def cancel(self, conversation_id: int | None = None) -> None:
        """Stop the answer being generated (and any tool waiting for a yes)."""
        self.controller.cancel(conversation_id)
        self.decline_pending_approvals()

    # -- chats: assistants, the trash, versions, export and import -----------------------------

    def new_chat(self, preset: str = "") -> Conversation:
        """A new chat, started from the assistant called `preset` (its prompt and options)."""
        if not preset:
            return self.controller.new_conversation()
        chosen = self.presets.get(preset)
        return self.controller.new_conversation(
            system_prompt=chosen.system_prompt or None, options=chosen.chat_options()
        )

    def delete_chat(self, conversation_id: int) -> None:
        """Move a chat to the trash (an answer being written stops first); Undo restores it."""
        if self.controller.active_turn(conversation_id) is not None:
            self.decline_pending_approvals()
        self.controller.delete_conversation(conversation_id)
        self.last_deleted = conversation_id
        log.info("conversation %s moved to the trash", conversation_id)

    def undo_delete(self) -> int | None:
        """Restore the chat deleted last (None when there is nothing to undo)."""
        conversation_id, self.last_deleted = self.last_deleted, None
        if conversation_id is None:
            return None
        try:
            self.storage.conversations.restore_conversation(conversation_id)
        except StorageError:  # emptied from the trash since
            return None
        return conversation_id

    def delete_forever(self, conversation_id: int | None = None) -> int:
        """Remove one chat from the trash for good, or all of them (None); returns how many."""
        store = self.storage.conversations
        if self.last_deleted == conversation_id or conversation_id is None:
            self.last_deleted = None
        if conversation_id is None:
            removed = store.empty_trash()
        else:
            if not store.get_conversation(conversation_id).in_trash:
                raise StorageError("Only a chat in the trash can be deleted for good.")
            store.delete_conversation_forever(conversation_id)
            removed = 1
        self.storage.media.collect_garbage()
        return removed

    def switch_version(self, message_id: int, step: int) -> int:
        """Show the version `step` away (-1: the one before) of a message; returns its id."""
        versions = self.storage.conversations.message_versions(message_id)
        ids = [v.id for v in versions]
        target = ids[max(0, min(len(ids) - 1, ids.index(message_id) + step))]
        if target != message_id:
            self.controller.switch_version(target)
        return target

    def export_chat(self, conversation_id: int, path: str | Path, fmt: str = "markdown",
                    *, with_media: bool = False) -> Path:  # fmt: skip
        """Write one chat as Markdown or JSON (`app.storage.archive`)."""
        from app.storage.archive import export_conversation

        store, media = self.storage.conversations, self.storage.media
        return export_conversation(store, media, conversation_id, path, fmt, with_media=with_media)  # type: ignore[arg-type]

    def export_all(self, path: str | Path, *, with_media: bool = False) -> tuple[Path, int]:
        """Write every chat to one zip of JSON exports."""
        from app.storage.archive import export_all

        return export_all(self.storage.conversations, self.storage.media, path,
                          with_media=with_media)  # fmt: skip

    def import_chats(self, path: str | Path) -> Any:
        """Import a JSON export or a zip of them (`app.storage.archive.ImportReport`)."""
        from app.storage.archive import import_file

        report = import_file(self.storage.conversations, self.storage.media, path)
        for name, why in report.failed:
            log.warning("import of %s failed: %s", name, why)
        return report

    def save_diagnostics(self, path: str | Path, conversation_id: int | None = None) -> Path:
        """Help ▸ Save Diagnostics (`app.diagnostics`); the chat only when the user ticks it."""
        from app.diagnostics import save_diagnostics

        return save_diagnostics(self, path, conversation_id)

    def model_defaults(self) -> dict[str, Any]:
        """The loaded (or chosen) local model's own sampling defaults (its
        generation_config.json), for "Model default" in Settings; {} for a remote model."""
        path = self.service.model_path or self.settings.model_path
        if self.settings.backend != "local" or not path:
            return {}
        from mlx_model.sampling import SamplingOptions

        try:
            defaults = SamplingOptions.from_checkpoint(path)
        except (OSError, ValueError):
            return {}
        return {name: getattr(defaults, name) for name in
                ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")}  # fmt: skip

    # -- the local OpenAI-compatible server ----------------------------------------------------

    def available_models(self) -> list[tuple[str, str]]:
        """(name, folder) of each model this Mac can load: the app's downloads and imports,
        then the Hugging Face cache's Gemma 4 checkpoints (the model picker lists these)."""
        from app.models.download import default_models_dir
        from app.models.local import available_models
        from app.models.names import served_model_name

        models = available_models(default_models_dir(self.storage.paths.root))
        return [(served_model_name(m.path), str(m.path)) for m in models]

    def server_config(self, **overrides: Any) -> Any:
        """The API server's configuration from the settings (`overrides` win)."""
        from app.server.config import ServerConfig

        s = self.settings
        values = {"host": s.server_host, "port": s.server_port, "api_key": s.server_api_key}
        return ServerConfig(**{**values, **overrides})

    def apply_server_setting(self) -> None:
        """Start, restart or stop the API server to match the settings, on a worker thread.

        It shares the engine service with the chat, so its requests queue behind (and
        stream beside) the chat's; starting it never blocks the caller.
        """
        s = self.settings
        with self._lock:
            self._server_generation += 1
            generation = self._server_generation
            old, self.server = self.server, None
        if self.server_url:
            self.server_url = ""
            self._emit(ServerChanged(""))

        def work() -> None:
            if old is not None:
                old.stop()
            if not s.server_enabled or self._closing:
                return
            from app.server.runner import ServerThread

            try:
                server = ServerThread(self.service, self.server_config()).start()
            except Exception as exc:  # noqa: BLE001 - port taken, unsafe host without key...
                self._emit(Notice(f"The local API server could not start: {exc}"))
                return
            with self._lock:
                current = generation == self._server_generation and not self._closing
                if current:
                    self.server = server
            if not current:
                server.stop()
                return
            self.server_url = server.url
            self._emit(ServerChanged(server.url))
            self._emit(Notice(f"Local API server listening at {server.url}"))

        threading.Thread(target=work, name="api-server-start", daemon=True).start()

    def serve_forever(self, config: Any) -> int:
        """Run the API server on this thread until SIGINT/SIGTERM; `gemma-desk serve`.

        The first signal cancels the running answer (its client gets the end of it) and shuts
        the server down gracefully; 0 once it served and stopped, 1 if it could not start.
        """
        import asyncio

        from app.server.app import create_app
        from app.server.runner import StoppableServer, uvicorn_config

        server = StoppableServer(
            uvicorn_config(create_app(self.service, config), config, log_level="info"),
            on_stop=self.service.cancel,
        )
        asyncio.run(server.serve())
        return 0 if server.started else 1

    # -- capture and playback ---------------------------------------------------------------------

    def microphone(self, source: Any = None, *, device: str | None = None,
                   **callbacks: Any) -> Any:  # fmt: skip
        """A push-to-talk `app.capture.recording.MicRecording` within the model's audio limit,
        from the microphone chosen in Settings (`device`: this one; `source`: a factory of
        test sources); once started, `.device_name` names the device."""
        from app.capture.recording import MicRecording

        device = device or self.settings.mic_device
        return MicRecording(self.ingestor, self.limits.max_audio_s, source, device=device,
                            **callbacks)  # fmt: skip

    @property
    def recordings_folder(self) -> Path:
        """Where record mode writes meetings (inside the data folder)."""
        from app.capture.meeting import RECORDINGS_DIRNAME

        return self.storage.paths.root / RECORDINGS_DIRNAME

    def record_meeting(self, source: Any = None, *, device: str | None = None,
                       **callbacks: Any) -> Any:  # fmt: skip
        """Record mode (`app.capture.meeting.MeetingRecording`) from the microphone chosen in
        Settings (`device`: this one; `source`: a test source): any length, straight to disk;
        `stop` attaches it (`on_finished(Attachment)`); once started, `.device_name` names it."""
        from app.capture.meeting import MeetingRecording

        device = device or self.settings.mic_device
        return MeetingRecording(self.ingestor, self.recordings_folder, source, device=device,
                                **callbacks)  # fmt: skip

    def recover_recordings(self) -> list[Path]:
        """Repair meetings a killed app left unfinished (told as a `Notice`)."""
        from app.capture.meeting import recover_recordings

        repaired = recover_recordings(self.recordings_folder)
        for path in repaired:
            self._emit(Notice(f"A recording that was interrupted was saved: {path}"))
        return repaired

    def camera(self, source: Any = None, *, device: str | None = None,
               microphone_source: Any = None, with_audio: bool = True,
               **callbacks: Any) -> Any:  # fmt: skip
        """A webcam `app.capture.recording.CameraRecording` within the model's video limit,
        from the camera and microphone chosen in Settings (`device`: this camera; `source`:
        a factory of test sources); `.device_name` names the camera."""
        from app.capture.devices import camera_index, cameras
        from app.capture.recording import CameraRecording

        name = device or self.settings.camera_device
        found = cameras() if source is None else []
        recording = CameraRecording(
            self.ingestor, self.limits.max_video_s, source, device=camera_index(name, found),
            mic_device=self.settings.mic_device, with_audio=with_audio,
            microphone_source=microphone_source, **callbacks,
        )  # fmt: skip
        if source is None:
            recording.device_name = name or (found[0].name if found else "the default camera")
        return recording

    def play_audio(self, path: str | Path, on_error: Callable[[str], None]) -> None:
        """Play an audio file on the default output, on a worker thread."""

        def play() -> None:
            try:
                import sounddevice
                import soundfile

                sounddevice.play(*soundfile.read(str(path), dtype="float32"))
            except Exception as exc:  # noqa: BLE001 - no audio output: say so
                on_error(f"Cannot play {Path(path).name}: {exc}")

        threading.Thread(target=play, name="audio-playback", daemon=True).start()

    def stop_audio(self) -> None:
        with contextlib.suppress(Exception):
            import sounddevice

            sounddevice.stop()

    # -- downloads and plans ----------------------------------------------------------------------

    def download_offer(self) -> Any:
        """The first-run screen's facts (`app.models.offer.DownloadOffer`)."""
        from app.models.offer import download_offer

        return download_offer(self.settings)

    def memory_plan(self, path: str | None = None) -> tuple[list[tuple[str, str]], str]:
        """Rows and a verdict for the model at `path` (or the loaded one) under the settings."""
        from app.models.offer import memory_plan_text

        return memory_plan_text(self.settings, path, self.service.model_path)

    def start_download(
        self,
        on_progress: Callable[[int, int, str], None],
        on_done: Callable[[str, str], None],
    ) -> None:
        """Download the recommended model on a worker thread, then its assistant (the drafter
        for faster answers) when "Faster answers" is on.

        `on_progress(done bytes, total bytes, what)` while it runs; `on_done(model folder,
        "")` or `on_done("", why not)` at the end (a cancelled download resumes later). The
        model is usable without its assistant: when that part fails, a `Notice` says so and
        `on_done` still gives the model.
        """
        from app.models import download as dl
        from app.models.catalog import GEMMA_4_12B_IT, assistant_entry
        from app.models.hub_download import HubCacheDownloader

        assistant = assistant_entry(GEMMA_4_12B_IT) if self.settings.speculative_decoding else None

        def fetch(entry: Any, label: str) -> Any:
            def on_event(event: Any) -> None:
                if isinstance(event, dl.DownloadProgress):
                    on_progress(event.done_bytes, event.total_bytes, label + event.file)

            # Into the Hugging Face cache, where mlx-lm / mlx-vlm users may already have it.
            self._downloader = HubCacheDownloader(entry, on_event=on_event)
            return self._downloader.run()

        def run() -> None:
            try:
                model = fetch(GEMMA_4_12B_IT, "")
            except Exception as exc:  # noqa: BLE001 - reported as a failed download
                cancelled = isinstance(exc, dl.DownloadCancelledError)
                on_done(
                    "",
                    "Download cancelled; it resumes where it stopped." if cancelled else str(exc),
                )
                return
            if assistant is not None:
                try:
                    fetch(assistant, "Assistant (faster answers): ")
                except Exception as exc:  # noqa: BLE001 - the model works without it
                    self._emit(
                        Notice(
                            f"The assistant for faster answers ({assistant.repo_id}) was not "
                            f"downloaded: {exc} Answers come at the plain speed; downloading "
                            "the model again fetches it."
                        )
                    )
            on_done(str(model.path), "")

        threading.Thread(target=run, name="model-download", daemon=True).start()

    def cancel_download(self) -> None:
        if self._downloader is not None:
            self._downloader.cancel()

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything (server, generation, MCP, download); close the storage it opened."""
        self._closing = True
        if self._pressure_monitor is not None:
            self._pressure_monitor.stop()
        self._unsubscribe_settings()
        self._unsubscribe_service()
        self.decline_pending_approvals()
        self.cancel_download()
        with self._lock:  # the server uses the engine service: stop it first
            self._server_generation += 1
            server, self.server = self.server, None
        if server is not None:
            server.stop()
        self.controller.cancel()
        self.controller.close()
        self.service.shutdown(timeout=10.0)
        with self._lock:
            manager, self.mcp = self.mcp, None
        if manager is not None:
            manager.close()
        if self._owns_storage:
            self.storage.close()

    def __enter__(self) -> AppSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Transcript:
    """A dictation job's text as it streams; `on_done(text, error)` at its end."""

    on_done: Callable[[str, str | None], None]
    parts: list[str] = field(default_factory=list)
    error: str | None = None

    def add(self, event: ServiceEvent) -> None:
        if isinstance(event, EngineOutput) and isinstance(event.event, TextDelta):
            self.parts.append(event.event.text)
        elif isinstance(event, JobFailed):
            self.error = event.message
        elif isinstance(event, JobDone):
            self.on_done("" if self.error else "".join(self.parts).strip(), self.error)


def _host(url: str) -> str:
    """host:port of a URL, for the status line."""
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


TRANSCRIBE_PROMPT = (
    "Transcribe this audio exactly as spoken. Reply with the transcript only, no comments."
)
