"""A remote OpenAI-compatible server (vLLM, SGLang, another Gemma Desk) used like the local engine.

`RemoteEngine` has the local `mlx_model.engine.Engine`'s surface (`stream`, `generate`,
`cancel`, `info`) and yields the same `mlx_model.events`, so the engine service, the
controller and the GUI treat it exactly like the local model. Plug it in with
`EngineService(engine_factory=remote_engine_factory(model=..., api_key=...))` and
`service.load_model(URL)`.

Conversations in the Hugging Face chat shape are sent as OpenAI messages: images (paths,
PIL images or arrays) as PNG/JPEG data URLs, audio as base64 WAV `input_audio`, tool calls
and tool responses in OpenAI's form. Tools work as locally: plain JSON schemas end the
generation at a tool call ("tool_call"); a `ToolRegistry` (or typed functions) is run
here, between requests, up to the registry's step limit. Thinking is asked for with
`chat_template_kwargs.enable_thinking` and read back from `reasoning_content` (or vLLM's
`reasoning`). Uses the official `openai` package.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.messages import json_text, parse_arguments, to_openai_messages
from mlx_model.events import (
    EngineEvent,
    Finished,
    GenerationError,
    GenerationStats,
    StopReason,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
)
from mlx_model.tools import Tool, ToolRegistry, tool_from_function

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_of_turn",
    "length": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "content_filter": "end_of_turn",
}


class RemoteError(Exception):
    """The remote server could not be used; `kind` is the `GenerationError` kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RemoteEndpoint:
    """Where the remote model is: base URL (ending in /v1 for most servers), model name, key."""

    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0


class RemoteEngine:
    """Streams generations from a remote OpenAI-compatible server; see the module docstring."""

    def __init__(self, endpoint: RemoteEndpoint, client: Any = None) -> None:
        import openai

        self.endpoint = endpoint
        self.client = client or openai.OpenAI(
            base_url=endpoint.base_url.rstrip("/"),
            api_key=endpoint.api_key or "none",
            timeout=openai.Timeout(endpoint.timeout_s, connect=endpoint.connect_timeout_s),
            max_retries=0,
        )
        self._cancel = threading.Event()
        self._response: Any = None
        self._busy = threading.Lock()
        self.context_limit = 0

    @classmethod
    def load(
        cls, url: str, *, model: str = "", api_key: str = "", check: bool = True, **_: Any
    ) -> RemoteEngine:
        """Connect to `url` and check that it serves `model` (the first one listed if empty)."""
        engine = cls(RemoteEndpoint(url, model, api_key))
        if check:
            engine.check()
        return engine

    def check(self) -> list[str]:
        """The model ids the server lists; raises `RemoteError` when it is unreachable or lacks ours."""
        try:
            ids = [m.id for m in self.client.models.list()]
        except Exception as exc:  # noqa: BLE001 - turned into a message for people
            raise _remote_error(exc, self.endpoint) from exc
        if not self.endpoint.model:
            if not ids:
                raise RemoteError("not_found", f"{self.endpoint.base_url} serves no model.")
            self.endpoint = RemoteEndpoint(**{**self.endpoint.__dict__, "model": ids[0]})
        elif self.endpoint.model not in ids:
            raise RemoteError(
                "not_found",
                f"{self.endpoint.base_url} does not serve {self.endpoint.model!r} "
                f"(it serves: {', '.join(ids) or 'nothing'}).",
            )
        return ids

    def info(self) -> dict[str, Any]:
        return {"remote": True, "base_url": self.endpoint.base_url, "model": self.endpoint.model}

    def cancel(self) -> None:
        """Stop the running generation (thread-safe): the HTTP stream is closed."""
        self._cancel.set()
        response = self._response
        if response is not None:
            # Closing a stream another thread reads may complain; the reader notices the cancel.
            with contextlib.suppress(Exception):
                response.close()

    def close(self) -> None:
        self.cancel()
        self.client.close()

    def generate(self, messages: list[dict[str, Any]], **options: Any) -> list[EngineEvent]:
        return list(self.stream(messages, **options))

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: ToolRegistry | Sequence[Tool | Callable[..., Any] | dict[str, Any]] | None = None,
        enable_thinking: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
        stop: Sequence[str] | str | None = None,
        **_ignored: Any,
    ) -> Iterator[EngineEvent]:
        """Generate the reply to `messages` (Hugging Face chat shape) as engine events."""
        self._cancel.clear()
        if not self._busy.acquire(blocking=False):
            yield GenerationError(
                "busy", "the remote backend is already generating; cancel it first"
            )
            return
        try:
            yield from self._stream(
                messages,
                tools,
                enable_thinking,
                dict(
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=top_p,
                    seed=seed,
                    stop=stop,
                ),
                top_k,
            )
        finally:
            self._busy.release()

    def _stream(
        self,
        messages: list[dict[str, Any]],
        tools: Any,
        enable_thinking: bool,
        sampling: dict[str, Any],
        top_k: int | None,
    ) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        try:
            registry, schemas = _resolve_tools(tools)
            conversation = to_openai_messages(messages)
        except RemoteError as exc:
            yield GenerationError(exc.kind, str(exc))
            return
        stats = GenerationStats(context_limit=self.context_limit)
        stats.extra["remote"] = self.endpoint.base_url
        appended: list[dict[str, Any]] = []
        steps = 0
        remaining = sampling["max_tokens"]
        turn = _Turn()
        try:
            while True:
                turn = _Turn()
                request = self._request(
                    conversation, schemas, enable_thinking, sampling, top_k, remaining
                )
                yield from self._run_turn(request, turn)
                stats.generated_tokens += turn.completion_tokens
                stats.prefilled_tokens += turn.prompt_tokens - turn.cached_tokens
                stats.cached_tokens += turn.cached_tokens
                stats.context_tokens = turn.prompt_tokens + turn.completion_tokens
                if stats.ttft_s == 0.0 and turn.first_token_at is not None:
                    stats.ttft_s = turn.first_token_at - started
                stats.extra["decode_s"] = stats.extra.get("decode_s", 0.0) + turn.decode_s
                stats.stop_reason = turn.stop_reason
                if remaining is not None:
                    remaining -= turn.completion_tokens
                if turn.stop_reason != "tool_call" or registry is None or not turn.calls:
                    break
                if remaining is not None and remaining <= 0:
                    stats.stop_reason = "length"
                    break
                steps += 1
                if steps > registry.max_steps:
                    stats.extra["tool_step_limit"] = registry.max_steps
                    break
                new_messages = [_assistant_message(turn, hf=True)]
                conversation.append(_assistant_message(turn, hf=False))
                for result in registry.execute_all(turn.calls):
                    yield ToolResultEvent(
                        call=result.call, result=result.result, error=result.error
                    )
                    response = result.response()
                    new_messages.append(
                        {
                            "role": "tool",
                            "name": result.call.name,
                            "tool_call_id": result.call.id,
                            "content": response,
                        }
                    )
                    conversation.append(
                        {
                            "role": "tool",
                            "tool_call_id": result.call.id,
                            "content": json_text(response),
                        }
                    )
                appended.extend(new_messages)
                if self._cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
        except RemoteError as exc:
            yield GenerationError(exc.kind, str(exc))
            return
        if stats.stop_reason != "tool_call":
            appended.append(_assistant_message(turn, hf=True, final=True))
        decode_s = stats.extra.get("decode_s", 0.0)
        stats.decode_tps = max(stats.generated_tokens - 1, 0) / decode_s if decode_s > 0 else 0.0
        stats.extra["messages"] = appended
        stats.extra["tool_steps"] = steps
        yield Finished(stats=stats)

    def _request(
        self,
        conversation: list[dict[str, Any]],
        schemas: list[dict[str, Any]] | None,
        enable_thinking: bool,
        sampling: dict[str, Any],
        top_k: int | None,
        max_tokens: int | None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.endpoint.model,
            "messages": conversation,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens is not None:
            request["max_tokens"] = int(max_tokens)
        for name in ("temperature", "top_p", "seed"):
            if sampling.get(name) is not None:
                request[name] = sampling[name]
        stop = sampling.get("stop")
        if stop:
            request["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if schemas:
            request["tools"] = schemas
        extra: dict[str, Any] = {}
        if top_k is not None:
            extra["top_k"] = int(top_k)
        if enable_thinking:
            extra["chat_template_kwargs"] = {"enable_thinking": True}
        if extra:
            request["extra_body"] = extra
        return request

    def _run_turn(self, request: dict[str, Any], turn: _Turn) -> Iterator[EngineEvent]:
        if self._cancel.is_set():
            turn.stop_reason = "cancelled"
            return
        t0 = time.perf_counter()
        partial: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        try:
            stream = self.client.chat.completions.create(**request)
            self._response = stream
            for chunk in stream:
                if self._cancel.is_set():
                    turn.stop_reason = "cancelled"
                    break
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    turn.prompt_tokens = usage.prompt_tokens or 0
                    turn.completion_tokens = usage.completion_tokens or 0
                    details = getattr(usage, "prompt_tokens_details", None)
                    turn.cached_tokens = (
                        (getattr(details, "cached_tokens", 0) or 0) if details else 0
                    )
                for choice in chunk.choices or []:
                    delta = choice.delta
                    extra = getattr(delta, "model_extra", None) or {}
                    thinking = extra.get("reasoning_content") or extra.get("reasoning")
                    if thinking:
                        turn.mark_token(t0)
                        turn.thinking += thinking
                        yield ThinkingDelta(thinking)
                    if delta.content:
                        turn.mark_token(t0)
                        turn.text += delta.content
                        yield TextDelta(delta.content)
                    for call in delta.tool_calls or []:
                        turn.mark_token(t0)
                        slot = partial.setdefault(
                            call.index or 0, {"id": "", "name": "", "arguments": ""}
                        )
                        if call.id:
                            slot["id"] = call.id
                        if call.function is not None:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except Exception as exc:  # noqa: BLE001 - typed below
            if self._cancel.is_set():
                turn.stop_reason = "cancelled"
            else:
                raise _remote_error(exc, self.endpoint) from exc
        finally:
            self._response = None
        for index in sorted(partial):
            slot = partial[index]
            call = ToolCall(
                name=slot["name"], arguments=parse_arguments(slot["arguments"]), id=slot["id"]
            )
            turn.calls.append(call)
            yield ToolCallEvent(call)
        if turn.first_token_at is not None:
            turn.decode_s = time.perf_counter() - turn.first_token_at
        if turn.stop_reason != "cancelled":
            turn.stop_reason = (
                "tool_call" if turn.calls else _STOP_REASONS.get(finish or "stop", "end_of_turn")
            )
        if not turn.completion_tokens:
            turn.completion_tokens = turn.chunks


@dataclass
class _Turn:
    text: str = ""
    thinking: str = ""
    calls: list[ToolCall] = None  # type: ignore[assignment]
    stop_reason: StopReason = "end_of_turn"
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    chunks: int = 0
    first_token_at: float | None = None
    decode_s: float = 0.0

    def __post_init__(self) -> None:
        self.calls = []

    def mark_token(self, t0: float) -> None:
        self.chunks += 1
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()


def remote_engine_factory(
    *, model: str = "", api_key: str = "", check: bool = True
) -> Callable[..., RemoteEngine]:
    """An `engine_factory` for `EngineService`: `service.load_model(URL)` connects to that server."""

    def factory(url: str, **_options: Any) -> RemoteEngine:
        return RemoteEngine.load(url, model=model, api_key=api_key, check=check)

    return factory


def _assistant_message(turn: _Turn, *, hf: bool, final: bool = False) -> dict[str, Any]:
    """The assistant message of a turn: Hugging Face shape (`hf`, for the app) or OpenAI's."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.text}
    if hf and turn.thinking:
        message["reasoning_content"] = turn.thinking
    if turn.calls and not final:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if hf
                    else json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in turn.calls
        ]
    return message


def _resolve_tools(tools: Any) -> tuple[ToolRegistry | None, list[dict[str, Any]] | None]:
    """(registry that runs calls here or None, schemas to send or None), as the local engine does."""
    if tools is None:
        return None, None
    if isinstance(tools, ToolRegistry):
        return (tools, tools.schemas()) if len(tools) else (None, None)
    items = list(tools)
    if not items:
        return None, None
    if all(isinstance(t, dict) for t in items):
        return None, items
    if any(isinstance(t, dict) for t in items):
        raise RemoteError(
            "invalid_request", "mix of executable tools and plain schemas is not supported"
        )
    registry = ToolRegistry()
    for item in items:
        registry.register(item if isinstance(item, Tool) else tool_from_function(item))
    return registry, registry.schemas()


def _remote_error(exc: BaseException, endpoint: RemoteEndpoint) -> RemoteError:
    import openai

    where = endpoint.base_url
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return RemoteError("timeout", f"{where} did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return RemoteError("connection", f"Cannot reach {where}: {exc.__cause__ or exc}")
    if isinstance(exc, openai.AuthenticationError):
        return RemoteError("auth", f"{where} refused the API key.")
    if isinstance(exc, openai.NotFoundError):
        return RemoteError("not_found", f"{where}: {_message(exc)}")
    if isinstance(exc, openai.RateLimitError):
        return RemoteError("busy", f"{where} is busy: {_message(exc)}")
    if isinstance(exc, openai.BadRequestError):
        text = _message(exc)
        kind = "context_overflow" if "context" in text.lower() else "invalid_request"
        return RemoteError(kind, f"{where} rejected the request: {text}")
    if isinstance(exc, openai.APIError):
        return RemoteError("remote", f"{where} failed: {_message(exc)}")
    return RemoteError("internal", f"{type(exc).__name__}: {exc}")


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "") or exc)
