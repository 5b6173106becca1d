"""Ollama's API, which many desktop tools speak: `/api/chat`, `/api/generate` (streamed as
NDJSON unless `stream: false`), `/api/tags`, `/api/show`, `/api/ps`, `/api/version`.

Requests are turned into the same `ChatRequest` as OpenAI's (messages through the one
conversion, `app.messages`: base64 `images` become image parts, tool calls keep their
argument objects; `options` map to the generation options: `num_predict`, `temperature`,
`top_p`, `top_k`, `min_p`, `repeat_penalty`, `seed`, `stop`); `format` ("json" or a JSON
Schema) and `think` as everywhere else. `/api/generate` sends `system` and `prompt` as one
conversation through the chat template; `raw`, `suffix` and `template` are refused. An
empty request (no prompt / no messages) only loads the model, as Ollama's does: here it
answers at once with `done_reason: "load"`.

The model listings describe the one served model (its name, size on disk, precision,
context); `digest` identifies the served name and folder, not the weights' bytes (hashing
gigabytes for a listing would take minutes). Errors are Ollama's `{"error": "message"}`
with the same statuses as the OpenAI endpoints (`app.errors`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.engines.contract import (
    Finished,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    TurnResult,
)
from app.options import ResponseFormat
from app.server.chat_request import (
    REASONING_EFFORTS,
    ChatRequest,
    build_options,
    max_tokens_into,
    parse_messages,
    parse_tools,
    require_bool,
    require_model,
    require_object,
    sampling_values,
    stop_list,
    unknown_fields,
)
from app.server.config import ServerConfig
from app.server.errors import bad_request

# The Ollama API version these endpoints follow (clients gate features on it).
OLLAMA_API_VERSION = "0.12.0"
_CHAT_FIELDS = frozenset(
    {"model", "messages", "tools", "format", "options", "stream", "think", "keep_alive"}
)
_GENERATE_FIELDS = frozenset(
    {
        "model", "prompt", "system", "images", "format", "options", "stream", "think",
        "keep_alive", "raw", "suffix", "template", "context",
    }
)  # fmt: skip
_OPTIONS = frozenset(
    {"num_predict", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "stop"}
)
# Options that tune Ollama's own runner: accepted, no effect here.
_RUNNER_OPTIONS = frozenset(
    {
        "num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "use_mlock", "num_thread",
        "numa", "num_keep", "repeat_last_n", "typical_p", "tfs_z", "mirostat", "mirostat_tau",
        "mirostat_eta", "penalize_nl", "presence_penalty", "frequency_penalty", "low_vram",
        "vocab_only", "f16_kv", "logits_all", "embedding_only",
    }
)  # fmt: skip


def parse_chat(body: Any, config: ServerConfig) -> ChatRequest:
    """A `ChatRequest` from an `/api/chat` body (400 naming the field at fault)."""
    body = require_object(body)
    model = require_model(body)
    messages = body.get("messages")
    if messages is None or messages == []:
        return ChatRequest(
            model, [], stream=_stream(body), extra={"load_only": True, "api": "chat"}
        )
    if not isinstance(messages, list):
        raise bad_request("`messages` must be a list.", param="messages")
    openai_messages = [_chat_message(m, f"messages[{i}]") for i, m in enumerate(messages)]
    tools = parse_tools(body.get("tools"))
    options, param, ignored = _options(body, tools)
    return ChatRequest(
        model=model,
        messages=parse_messages(openai_messages, config),
        stream=_stream(body),
        tools=tools,
        options=options,
        max_tokens_param=param,
        ignored=unknown_fields(body, _CHAT_FIELDS) + ignored,
        extra={"api": "chat"},
    )


def parse_generate(body: Any, config: ServerConfig) -> ChatRequest:
    """A `ChatRequest` from an `/api/generate` body (400 naming the field at fault)."""
    body = require_object(body)
    model = require_model(body)
    for name in ("raw", "suffix", "template"):
        if body.get(name):
            raise bad_request(
                f"`{name}` is not supported: prompts always go through the model's chat template.",
                param=name,
            )
    prompt = body.get("prompt") or ""
    system = body.get("system") or ""
    images = body.get("images") or []
    if not isinstance(prompt, str) or not isinstance(system, str):
        raise bad_request("`prompt` and `system` must be strings.", param="prompt")
    if not prompt and not images:
        return ChatRequest(
            model, [], stream=_stream(body), extra={"load_only": True, "api": "generate"}
        )
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append(_chat_message({"role": "user", "content": prompt, "images": images}, "prompt"))
    options, param, ignored = _options(body, None)
    return ChatRequest(
        model=model,
        messages=parse_messages(messages, config),
        stream=_stream(body),
        options=options,
        max_tokens_param=param,
        ignored=unknown_fields(body, _GENERATE_FIELDS) + ignored,
        extra={"api": "generate"},
    )


def writer(chat: ChatRequest, model: str) -> OllamaWriter:
    return OllamaWriter(
        model, chat.extra.get("api", "chat"), load_only=bool(chat.extra.get("load_only"))
    )


def _stream(body: dict[str, Any]) -> bool:
    return require_bool(body, "stream", default=True)  # Ollama streams unless told not to


def _chat_message(message: Any, where: str) -> dict[str, Any]:
    """An Ollama message as an OpenAI chat message (then checked by the one conversion)."""
    if not isinstance(message, dict):
        raise bad_request(f"`{where}` must be an object.", param=where)
    role = message.get("role")
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise bad_request(f"`{where}.content` must be a string.", param=where)
    out: dict[str, Any] = {"role": role, "content": content}
    images = message.get("images") or []
    if images:
        if role != "user" or not isinstance(images, list):
            raise bad_request(f"`{where}.images` must be a list, on a user message.", param=where)
        parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
        for image in images:
            if not isinstance(image, str):
                raise bad_request(f"`{where}.images` must hold base64 strings.", param=where)
            url = image if image.startswith("data:") else f"data:image/*;base64,{image}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        out["content"] = parts
    if role == "assistant" and message.get("tool_calls"):
        calls = message["tool_calls"]
        if not isinstance(calls, list):
            raise bad_request(f"`{where}.tool_calls` must be a list.", param=where)
        out["tool_calls"] = [
            {"id": c.get("id", ""), "type": "function", "function": c.get("function")}
            if isinstance(c, dict)
            else c
            for c in calls
        ]
    if role == "tool":
        out["name"] = message.get("tool_name") or message.get("name")
    return out


def _options(
    body: dict[str, Any], tools: list[dict[str, Any]] | None
) -> tuple[Any, str | None, tuple[str, ...]]:
    """(the generation options, the field that set max_tokens, unknown option names)."""
    raw = body.get("options") or {}
    if not isinstance(raw, dict):
        raise bad_request("`options` must be an object.", param="options")
    values = sampling_values(raw)
    param = max_tokens_into(values, raw, ("num_predict",))
    if raw.get("stop") is not None:
        values["stop"] = stop_list(raw["stop"])
    think = body.get("think")
    if think is not None:
        if isinstance(think, str):
            if think not in REASONING_EFFORTS:
                raise bad_request(
                    f"`think` must be true, false or one of {', '.join(REASONING_EFFORTS)}.",
                    param="think",
                )
            think = think not in ("none", "minimal")
        values["enable_thinking"] = think
    fmt = body.get("format")
    if fmt == "json":
        values["response_format"] = ResponseFormat.json_object()
    elif isinstance(fmt, dict):
        values["response_format"] = ResponseFormat.json_schema(fmt, strict=False)
    elif fmt not in (None, ""):
        raise bad_request('`format` must be "json" or a JSON schema object.', param="format")
    options = build_options(values, {"max_tokens": "options.num_predict"})
    unknown = sorted(set(raw) - _OPTIONS - _RUNNER_OPTIONS)
    return options, param and f"options.{param}", tuple(f"options.{k}" for k in unknown)


# --- the answer ------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)


class OllamaWriter:
    """`Writer` for `/api/chat` and `/api/generate`: one object, or NDJSON lines."""

    media_type = "application/x-ndjson"

    def __init__(self, model: str, api: str, *, load_only: bool = False) -> None:
        self.model = model
        self.api = api
        self.load_only = load_only
        self.started = time.perf_counter()
        self.turn = TurnResult()

    def _object(
        self, *, text: str = "", thinking: str = "", calls: Any = None, done: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "created_at": _now()}
        if self.api == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            body["message"] = message
        else:
            body["response"] = text
            if thinking:
                body["thinking"] = thinking
        body["done"] = done
        if done:
            body.update(self._final())
        return body

    def _final(self) -> dict[str, Any]:
        if self.load_only:
            return {"done_reason": "load"}
        stats = self.turn.stats
        reason = "length" if stats is not None and stats.stop_reason == "length" else "stop"
        out: dict[str, Any] = {
            "done_reason": reason,
            "total_duration": _nanoseconds(time.perf_counter() - self.started),
            "load_duration": 0,
        }
        if stats is not None:
            out.update(
                prompt_eval_count=stats.prefilled_tokens + stats.cached_tokens,
                prompt_eval_duration=_nanoseconds(stats.extra.get("prefill_s", 0.0)),
                eval_count=stats.generated_tokens,
                eval_duration=_nanoseconds(stats.extra.get("decode_s", 0.0)),
            )
        return out

    @staticmethod
    def _call(call: ToolCall) -> dict[str, Any]:
        return {"id": call.id, "function": {"name": call.name, "arguments": dict(call.arguments)}}

    def add(self, event: Any) -> None:
        self.turn.add(event)

    def body(self) -> dict[str, Any]:
        turn = self.turn
        calls = [self._call(c) for c in turn.tool_calls]
        return self._object(text=turn.text, thinking=turn.thinking, calls=calls, done=True)

    def stream_start(self) -> bytes:
        return b""

    def stream_event(self, event: Any) -> bytes | None:
        if isinstance(event, TextDelta) and event.text:
            return _line(self._object(text=event.text, done=False))
        if isinstance(event, ThinkingDelta) and event.text:
            return _line(self._object(thinking=event.text, done=False))
        if isinstance(event, ToolCallEvent) and self.api == "chat":
            return _line(self._object(calls=[self._call(event.call)], done=False))
        if isinstance(event, Finished):
            self.turn.add(event)
        return None

    def stream_end(self) -> bytes:
        return _line(self._object(done=True))

    def stream_error(self, error: Any) -> bytes:
        return _line({"error": error.message})


def _line(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode() + b"\n"


# --- model information -----------------------------------------------------------------------


def tags(state: Any, body: Any = None) -> dict[str, Any]:
    """`GET /api/tags`: the served model (none when none is loaded)."""
    described = _describe(state)
    return {"models": [described] if described else []}


def running(state: Any, body: Any = None) -> dict[str, Any]:
    """`GET /api/ps`: the loaded model, kept until it is unloaded."""
    described = _describe(state)
    if not described:
        return {"models": []}
    info = state.bridge.info
    plan = getattr(info, "plan", None)
    described.update(
        expires_at=(datetime.now(UTC) + timedelta(days=365)).isoformat().replace("+00:00", "Z"),
        size_vram=int(getattr(plan, "total_bytes", 0) or described["size"]),
        context_length=state.bridge.context_limit,
    )
    return {"models": [described]}


def version(state: Any, body: Any = None) -> dict[str, Any]:
    """`GET /api/version`: the Ollama API version these endpoints follow."""
    return {"version": OLLAMA_API_VERSION}


def show(state: Any, body: Any) -> dict[str, Any]:
    """`POST /api/show {"model"}`: the served model's details and capabilities."""
    body = require_object(body)
    requested = body.get("model") or body.get("name")
    if not isinstance(requested, str) or not requested:
        raise bad_request("`model` is required.", param="model")
    state.resolve_model(requested)
    described = _describe(state)
    config = _checkpoint(state.bridge.model_path or "")[1]
    family = described["details"]["family"]
    capabilities = ["completion", "tools", "thinking"]
    if config.get("vision_config"):
        capabilities.append("vision")
    if config.get("audio_config"):
        capabilities.append("audio")
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": described["details"],
        "model_info": {
            "general.architecture": family,
            "general.basename": state.model_id,
            f"{family}.context_length": state.bridge.context_limit,
        },
        "capabilities": capabilities,
        "modified_at": described["modified_at"],
    }


def _describe(state: Any) -> dict[str, Any] | None:
    path = state.bridge.model_path
    if not path:
        return None
    served = state.model_id
    size, config, modified = _checkpoint(path)
    info = state.bridge.info
    family = str(config.get("model_type") or "gemma4").replace("_unified", "")
    from app.models.names import family_aliases

    names = family_aliases(served) or family_aliases(Path(path).name)
    parameter_size = names[0].rsplit("-", 1)[-1].upper() if names else ""
    return {
        "name": served,
        "model": served,
        "modified_at": modified,
        "size": size,
        "digest": hashlib.sha256(f"{served}\0{path}".encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "safetensors",
            "family": family,
            "families": [family],
            "parameter_size": parameter_size,
            "quantization_level": getattr(info, "precision", "") or "",
        },
    }


@lru_cache(maxsize=8)
def _checkpoint(path: str) -> tuple[int, dict[str, Any], str]:
    """(weights' size in bytes, config.json, modified time) of a checkpoint folder."""
    folder = Path(path)
    size = 0
    if folder.is_dir():
        size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    try:
        stamp = os.path.getmtime(folder)
    except OSError:
        stamp = time.time()
    modified = datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
    return size, config if isinstance(config, dict) else {}, modified
