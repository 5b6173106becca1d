"""The remote engine: an OpenAI-compatible server (vLLM, llama.cpp, another Gemma Desk) behind
the engine contract.

Each `stream` is one chat-completions request, streamed. Conversations in the Hugging
Face chat shape go out as OpenAI messages (`app.messages.to_openai_messages`: images as
data URLs, audio as base64 WAV, tool calls and results in OpenAI's form). Every option
the API can carry is sent: the standard fields, and as extra body fields the ones vLLM and
llama.cpp take (`top_k`, `min_p`, `repetition_penalty`, `chat_template_kwargs` for
thinking, `mm_processor_kwargs.max_soft_tokens` for the image budget); the conversation id
goes as `prompt_cache_key`; `response_format`, `tool_choice` and `parallel_tool_calls`
go as OpenAI's fields (the server enforces them). The one option it cannot express, the "drop_oldest" context
policy, is refused by name. Thinking is read back from `reasoning_content` (or vLLM's
`reasoning`). Uses the official `openai` package.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.engines.contract import EngineInfo, RemoteModel
from app.errors import AppError, ErrorKind, as_kind
from app.keychain import plain_http_warning
from app.messages import parse_arguments, to_openai_messages
from app.options import FunctionChoice, GenerationOptions
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
)

log = logging.getLogger(__name__)

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_of_turn",
    "length": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "content_filter": "end_of_turn",
}
TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10.0


class RemoteEngine:
    """Streams model turns from a remote OpenAI-compatible server; see the module docstring."""

    def __init__(self, spec: RemoteModel, client: Any = None) -> None:
        import openai

        self.spec = spec
        self.client = client or openai.OpenAI(
            base_url=spec.url.rstrip("/"),
            api_key=spec.api_key or "none",
            timeout=openai.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            max_retries=0,
        )
        self._cancel = threading.Event()
        self._response: Any = None
        self._busy = threading.Lock()

    @classmethod
    def open(cls, spec: RemoteModel) -> RemoteEngine:
        """Connect to the server and check that it serves the model (the first one if unnamed)."""
        warning = plain_http_warning(spec.url, "The API key") if spec.api_key else None
        if warning:
            log.warning(warning)
        engine = cls(spec)
        if spec.check:
            engine.check()
        return engine

    def check(self) -> list[str]:
        """The model ids the server lists; `AppError` when it is unreachable or lacks ours."""
        try:
            ids = [m.id for m in self.client.models.list()]
        except Exception as exc:  # noqa: BLE001 - turned into a message for people
            raise remote_error(exc, self.spec.url) from exc
        if not self.spec.model:
            if not ids:
                raise AppError(ErrorKind.NOT_FOUND, f"{self.spec.url} serves no model.")
            self.spec = RemoteModel(self.spec.url, ids[0], self.spec.api_key, self.spec.check)
        elif self.spec.model not in ids and not self._knows_alias(self.spec.model):
            raise AppError(
                ErrorKind.NOT_FOUND,
                f"{self.spec.url} does not serve {self.spec.model!r} "
                f"(it serves: {', '.join(ids) or 'nothing'}).",
            )
        return ids

    def _knows_alias(self, name: str) -> bool:
        """Whether the server answers to `name` though it lists another id (an alias, as
        our own server and LiteLLM's proxy take)."""
        try:
            self.client.models.retrieve(name)
        except Exception:  # noqa: BLE001 - any failure means "not served"
            return False
        return True

    def info(self) -> EngineInfo:
        return EngineInfo(kind="remote", source=self.spec.url, name=self.spec.model)

    def drop_caches(self) -> int:
        """Nothing to free here: the server keeps its own caches."""
        return 0

    def cancel(self) -> None:
        """Stop the running turn (thread-safe): the HTTP stream is closed."""
        self._cancel.set()
        response = self._response
        if response is not None:
            # Closing a stream another thread reads may complain; the reader notices the cancel.
            with contextlib.suppress(Exception):
                response.close()

    def close(self) -> None:
        self.cancel()
        self.client.close()

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        options: GenerationOptions,
        conversation_id: str | None = None,
    ) -> Iterator[EngineEvent]:
        """One model turn after `messages` (Hugging Face chat shape), as engine events."""
        self._cancel.clear()
        if not self._busy.acquire(blocking=False):
            yield GenerationError(
                "busy", "the remote backend is already generating; cancel it first"
            )
            return
        try:
            yield from self._stream(messages, tools, options, conversation_id)
        finally:
            self._busy.release()

    def _stream(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        options: GenerationOptions,
        conversation_id: str | None,
    ) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        turn = _Turn()
        try:
            request = self.request(messages, tools, options, conversation_id)
            yield from self._run_turn(request, turn)
        except AppError as exc:
            yield GenerationError(exc.kind, str(exc))
            return
        stats = GenerationStats(stop_reason=turn.stop_reason)
        stats.generated_tokens = turn.completion_tokens
        stats.prefilled_tokens = turn.prompt_tokens - turn.cached_tokens
        stats.cached_tokens = turn.cached_tokens
        stats.context_tokens = turn.prompt_tokens + turn.completion_tokens
        if turn.first_token_at is not None:
            stats.ttft_s = turn.first_token_at - started
        stats.extra["decode_s"] = turn.decode_s
        stats.extra["remote"] = self.spec.url
        if turn.decode_s > 0:
            stats.decode_tps = max(stats.generated_tokens - 1, 0) / turn.decode_s
        yield Finished(stats=stats)

    def request(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        options: GenerationOptions,
        conversation_id: str | None = None,
    ) -> dict[str, Any]:
        """The chat-completions request for one turn (`AppError` for what it cannot carry)."""
        if options.context_policy != "error":
            raise AppError(
                ErrorKind.UNSUPPORTED,
                f"context_policy={options.context_policy!r} cannot be applied by a remote "
                "server; use the local model or the 'error' policy",
                param="context_policy",
            )
        request: dict[str, Any] = {
            "model": self.spec.model,
            "messages": to_openai_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": options.max_tokens,
        }
        for name in ("temperature", "top_p", "seed"):
            if getattr(options, name) is not None:
                request[name] = getattr(options, name)
        if options.stop:
            request["stop"] = list(options.stop)
        if tools:
            request["tools"] = list(tools)
            choice = options.tool_choice
            if isinstance(choice, FunctionChoice):
                request["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
            elif choice != "auto":
                request["tool_choice"] = choice
            if not options.parallel_tool_calls:
                request["parallel_tool_calls"] = False
        elif options.forces_tool_call:
            raise AppError(
                ErrorKind.INVALID_REQUEST,
                "tool_choice forces a tool call but no tools are given",
                param="tool_choice",
            )
        if options.response_format is not None:
            request["response_format"] = options.response_format.openai()
        extra: dict[str, Any] = {
            name: getattr(options, name)
            for name in ("top_k", "min_p", "repetition_penalty")
            if getattr(options, name) is not None
        }
        if options.enable_thinking:
            extra["chat_template_kwargs"] = {"enable_thinking": True}
        if options.image_budget is not None:
            extra["mm_processor_kwargs"] = {"max_soft_tokens": options.image_budget}
        if conversation_id:
            extra["prompt_cache_key"] = conversation_id
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
                raise remote_error(exc, self.spec.url) from exc
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
    calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = "end_of_turn"
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    chunks: int = 0
    first_token_at: float | None = None
    decode_s: float = 0.0

    def mark_token(self, t0: float) -> None:
        self.chunks += 1
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()


def remote_error(exc: BaseException, where: str) -> AppError:
    """An OpenAI client exception as an `AppError` of the right kind, naming the server."""
    import openai

    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return AppError(ErrorKind.TIMEOUT, f"{where} did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return AppError(ErrorKind.CONNECTION, f"Cannot reach {where}: {exc.__cause__ or exc}")
    if isinstance(exc, openai.AuthenticationError):
        return AppError(ErrorKind.AUTH, f"{where} refused the API key.")
    if isinstance(exc, openai.NotFoundError):
        return AppError(ErrorKind.NOT_FOUND, f"{where}: {_message(exc)}")
    if isinstance(exc, openai.RateLimitError):
        return AppError(ErrorKind.BUSY, f"{where} is busy: {_message(exc)}")
    if isinstance(exc, openai.BadRequestError):
        # Our own server names the kind in the error's `code`; other servers get the generic one.
        kind = as_kind(_code(exc)) if _code(exc) in set(ErrorKind) else ErrorKind.INVALID_REQUEST
        return AppError(kind, f"{where} rejected the request: {_message(exc)}")
    if isinstance(exc, openai.APIError):
        return AppError(ErrorKind.REMOTE, f"{where} failed: {_message(exc)}")
    return AppError(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "") or exc)


def _code(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    error = body.get("error", body) if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None
