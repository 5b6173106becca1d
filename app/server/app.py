"""The Starlette app: OpenAI's API (`/v1/models`, `/v1/chat/completions`, `/v1/responses`,
legacy `/v1/completions`), Ollama's (`/api/chat`, `/api/generate`, `/api/tags`, ...) and
`GET /health`.

Every generation request, whatever its API, passes the same gates, in order: the Host
header (DNS rebinding) when bound to loopback, the API key when one is set, the bounded
queue (429, before the body is even read), the body size limit, JSON parsing and checking
(each API's parser gives one `ChatRequest`) with every image and audio clip measured from
its header against the media budget (413/400), the model name (any of its aliases),
`max_tokens` cut to the loaded model's context and the engine's availability (503); then
one generation path runs it and the API's `Writer` shapes the answer. Only when the
request's turn comes are its media decoded, so waiting requests hold their compressed
bytes only. A generation is cancelled as soon as its client disconnects, while waiting,
streaming or not. Unknown request fields are ignored and listed in a `Warning` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import app.server.ollama_api as ollama_api
import app.server.responses_api as responses_api
import app.server.text_completions as text_completions
from app.engine_service import EngineService
from app.engines.contract import GenerationError, PrefillProgress
from app.options import DEFAULTS
from app.server.chat_request import ChatRequest, parse_chat_request
from app.server.completions import ChatWriter, Writer
from app.server.config import ServerConfig, is_loopback
from app.server.engine_bridge import EngineBridge, RunningGeneration, model_id_for
from app.server.errors import APIError, bad_request, engine_error
from app.server.generation_queue import GenerationQueue, Ticket
from app.server.media import prepare_media

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_JSON_NESTING = 64  # objects/lists inside each other; tool schemas need far fewer
_DRAIN_LIMIT = (
    256 * 1024 * 1024
)  # an oversize body is read and dropped up to this, so the client sees the 413


class ClientGone(Exception):
    """The client closed the connection."""


class ServerState:
    """What the handlers share: configuration, the engine bridge and the queue."""

    def __init__(self, bridge: EngineBridge, config: ServerConfig) -> None:
        self.bridge = bridge
        self.config = config
        self.queue = GenerationQueue(config.max_waiting)
        self.started = time.time()
        self.generations: list[RunningGeneration] = []  # the latest few, for status and tests
        self._aliases: tuple[str | None, Any] = (None, None)

    @property
    def model_id(self) -> str:
        return model_id_for(self.bridge.model_path, self.config.model_id)

    def aliases(self) -> Any:
        """The served model's `ModelAliases` (cached per loaded model); None when none is."""
        path = self.bridge.model_path
        if path is None:
            return None
        if self._aliases[0] != path:
            from app.models.names import ModelAliases

            aliases = ModelAliases.for_model(
                path,
                served=self.model_id,
                extra=self.config.model_aliases,
                accept_any=self.config.accept_any_model,
            )
            self._aliases = (path, aliases)
        return self._aliases[1]

    def resolve_model(self, requested: str) -> str:
        """The served model's name for a requested name or alias; 404 for any other."""
        aliases = self.aliases()
        served = aliases.resolve(requested) if aliases is not None else None
        if served is None:
            raise APIError(
                404,
                f"The model {requested!r} does not exist; this server serves {self.model_id!r}."
                if self.model_id
                else "No model is loaded.",
                code="model_not_found",
                param="model",
            )
        return served

    def max_tokens_bound(self) -> int:
        """The largest `max_tokens` a request gets: the loaded model's context (and the
        configured limit, when one is set); larger requests are cut to it."""
        bound = self.bridge.context_limit or DEFAULTS.max_tokens
        if self.config.max_tokens_limit:
            bound = min(bound, self.config.max_tokens_limit)
        return bound


def create_app(
    service: EngineService | EngineBridge, config: ServerConfig | None = None
) -> Starlette:
    """The ASGI app serving the engine service's loaded model (`app.state.server` holds its state)."""
    config = (config or ServerConfig()).validate()
    bridge = service if isinstance(service, EngineBridge) else EngineBridge(service)
    state = ServerState(bridge, config)

    async def models(request: Request) -> Response:
        _check_request(request, config)
        data = []
        if state.bridge.model_path:
            data.append(_model_json(state))
        return JSONResponse({"object": "list", "data": data})

    async def model(request: Request) -> Response:
        _check_request(request, config)
        state.resolve_model(request.path_params["model_id"])
        return JSONResponse(_model_json(state))

    async def health(request: Request) -> Response:
        # On loopback anyone on this machine may ask; reachable from outside, only with the key.
        if is_loopback(config.host):
            _check_host(request, config)
        else:
            _check_request(request, config)
        reason = state.bridge.unavailable_reason()
        body = {
            "status": "ok" if reason is None else "unavailable",
            "queue": state.queue.stats().as_dict(),
        }
        if reason:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if reason is None else 503)

    def generation(
        parse: Callable[..., ChatRequest],
        writer: Callable[[ChatRequest, str], Writer],
    ) -> Callable[[Request], Awaitable[Response]]:
        """A generation endpoint: its API's parser and answer shape around the one path."""

        async def endpoint(request: Request) -> Response:
            _check_request(request, config)
            try:
                ticket = state.queue.admit()  # a full queue answers 429 before reading the body
            except APIError:
                await _drain(request, 0)
                raise
            try:
                body = await _read_json(request, config.max_body_bytes)
                chat = await anyio.to_thread.run_sync(
                    parse, body, config
                )  # measures media from their headers; decodes nothing
                served = state.resolve_model(chat.model)
                _bound_max_tokens(chat, state.max_tokens_bound())
                if chat.extra.get("load_only"):  # Ollama's "load the model" request
                    ticket.release()
                    return _load_only_reply(request, state, writer(chat, served), chat)
                _raise_if_unavailable(state)
            except BaseException:
                ticket.release()
                raise
            return await _run_chat(request, state, chat, writer(chat, served), ticket)

        return endpoint

    async def no_embeddings(request: Request) -> Response:
        _check_request(request, config)
        raise APIError(
            501,
            "Embeddings are not available: this model has no embedding head (Gemma 4 is a "
            "generative model); use a dedicated embedding model.",
            code="embeddings_not_supported",
        )

    def info(handler: Callable[..., Any]) -> Callable[[Request], Awaitable[Response]]:
        """An Ollama information endpoint (same gates as the rest, JSON body when POST)."""

        async def endpoint(request: Request) -> Response:
            _check_request(request, config)
            body = (
                await _read_json(request, config.max_body_bytes)
                if request.method == "POST"
                else None
            )
            return JSONResponse(handler(state, body))

        return endpoint

    async def ollama_root(request: Request) -> Response:
        _check_request(request, config)
        return PlainTextResponse("Ollama is running")

    app = Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", model, methods=["GET"]),
            Route(
                "/v1/chat/completions",
                generation(
                    parse_chat_request, lambda chat, served: ChatWriter(served, chat.include_usage)
                ),
                methods=["POST"],
            ),
            Route(
                "/v1/completions",
                generation(text_completions.parse_request, text_completions.writer),
                methods=["POST"],
            ),
            Route(
                "/v1/responses",
                generation(responses_api.parse_request, responses_api.writer),
                methods=["POST"],
            ),
            Route("/v1/embeddings", no_embeddings, methods=["POST"]),
            Route(
                "/api/chat",
                generation(ollama_api.parse_chat, ollama_api.writer),
                methods=["POST"],
            ),
            Route(
                "/api/generate",
                generation(ollama_api.parse_generate, ollama_api.writer),
                methods=["POST"],
            ),
            Route("/api/tags", info(ollama_api.tags), methods=["GET"]),
            Route("/api/ps", info(ollama_api.running), methods=["GET"]),
            Route("/api/version", info(ollama_api.version), methods=["GET"]),
            Route("/api/show", info(ollama_api.show), methods=["POST"]),
            Route("/api/embed", no_embeddings, methods=["POST"]),
            Route("/api/embeddings", no_embeddings, methods=["POST"]),
            Route("/", ollama_root, methods=["GET", "HEAD"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.server = state
    return app


# --- gates ---------------------------------------------------------------------------------


def _check_host(request: Request, config: ServerConfig) -> None:
    # Bound to loopback, only loopback names are served: a web page cannot reach the
    # server through a rebound DNS name.
    if is_loopback(config.host):
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        if name and not is_loopback(name):
            raise APIError(403, f"Host {host!r} is not served here.", code="host_not_allowed")


def _check_request(request: Request, config: ServerConfig) -> None:
    _check_host(request, config)
    if not config.api_key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), config.api_key.encode()
    ):
        raise APIError(
            401,
            "Incorrect API key provided."
            if token
            else "An API key is required (Authorization: Bearer KEY).",
            code="invalid_api_key",
        )


async def _read_json(request: Request, limit: int) -> Any:
    # A web page can send a cross-site POST without asking first only as a form or plain
    # text; such a request carries an Origin header. Other clients (Ollama's, which send no
    # content type) are taken as they come.
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.split(";")[0].lower() and "origin" in request.headers:
        raise bad_request("The body must be JSON (Content-Type: application/json).")
    declared = request.headers.get("content-length")
    too_big = APIError(
        413, f"The request body is larger than the {limit} byte limit.", code="request_too_large"
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await _drain(request, int(declared))
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, size)
            raise too_big
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise bad_request(f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise bad_request(f"The JSON body nests deeper than {MAX_JSON_NESTING} levels.") from exc
    if json_nesting(body, MAX_JSON_NESTING) > MAX_JSON_NESTING:
        raise bad_request(f"The JSON body nests deeper than {MAX_JSON_NESTING} levels.")
    return body


def json_nesting(value: Any, limit: int) -> int:
    """How deeply lists/objects nest in `value`, counted without recursion (stops past `limit`)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


async def _drain(request: Request, already: int) -> None:
    """Read and drop the rest of an oversize body (bounded), so the client can read the 413."""
    if already > _DRAIN_LIMIT:
        return
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > _DRAIN_LIMIT:
                return
    except Exception:  # the client gave up or the stream was already consumed
        return


def _bound_max_tokens(chat: ChatRequest, bound: int) -> None:
    """`max_tokens` over the loaded model's context is cut to it (no answer can be longer)."""
    if chat.options.max_tokens > bound:
        chat.options = chat.options.replace(max_tokens=bound)


def _raise_if_unavailable(state: ServerState) -> None:
    reason = state.bridge.unavailable_reason()
    if reason is not None:
        raise APIError(503, reason, code="model_unavailable", headers={"Retry-After": "5"})


# --- generation ----------------------------------------------------------------------------


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_disconnect(request: Request, awaitable: Awaitable[T]) -> T:
    """`await awaitable`, or raise `ClientGone` (cancelling it) if the client disconnects first."""
    work = asyncio.ensure_future(awaitable)
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            raise ClientGone()
    return work.result()


async def _run_chat(
    request: Request, state: ServerState, chat: ChatRequest, writer: Writer, ticket: Ticket
) -> Response:
    """Wait for the turn, decode the media, generate; `ticket` is released however it ends."""
    config = state.config
    headers = _warning_headers(chat)
    generation: RunningGeneration | None = None
    handed_over = False
    media_folder = tempfile.mkdtemp(prefix="gemma-desk-request-")  # private (0700)

    def done() -> None:
        ticket.release()
        shutil.rmtree(media_folder, ignore_errors=True)

    try:
        try:
            await _unless_disconnect(request, ticket.turn())
            # Only now, with the turn held, are the request's images and clips handed over.
            messages = await _unless_disconnect(
                request, anyio.to_thread.run_sync(prepare_media, chat.messages, media_folder)
            )
        except ClientGone:
            return Response(status_code=499)
        _raise_if_unavailable(state)
        generation = state.bridge.start(
            messages,
            tools=chat.tools,
            options=chat.options,
            conversation_id=chat.conversation_id,
            on_done=done,
        )
        handed_over = True  # from here the ticket is released when the job has ended
        state.generations = [*state.generations[-7:], generation]
        timeout = config.first_event_timeout_s
        if chat.stream:
            first = await _unless_disconnect(request, _next_visible(generation, timeout))
            if isinstance(first, GenerationError):
                raise engine_error(first.kind, first.message)
            response = _StreamResponse(
                _stream_body(generation, first, writer, state),
                on_close=generation.cancel,
                media_type=writer.media_type,
                headers=headers,
            )
            generation = None  # the response owns it now
            return response

        async def collect() -> None:
            while (event := await generation.next_event(timeout)) is not None:
                if isinstance(event, GenerationError):
                    raise engine_error(event.kind, event.message)
                writer.add(event)

        await _unless_disconnect(request, collect())
        return JSONResponse(writer.body(), headers=headers)
    except ClientGone:
        return Response(status_code=499)
    except TimeoutError as exc:
        raise APIError(503, "The engine did not answer in time.", code="engine_timeout") from exc
    finally:
        if generation is not None:
            generation.cancel()  # a no-op when it already finished
        if not handed_over:
            done()


async def _next_visible(generation: RunningGeneration, timeout: float) -> Any:
    """The first event a client would see (progress events skipped), or None at the end."""
    while True:
        event = await generation.next_event(timeout)
        if not isinstance(event, PrefillProgress):
            return event


async def _stream_body(
    generation: RunningGeneration, first: Any, writer: Writer, state: ServerState
) -> AsyncIterator[bytes]:
    yield writer.stream_start()
    event = first
    try:
        while event is not None:
            if isinstance(event, GenerationError):
                yield writer.stream_error(engine_error(event.kind, event.message))
                return
            chunk = writer.stream_event(event)
            if chunk:
                yield chunk
            event = await generation.next_event(state.config.first_event_timeout_s)
    except TimeoutError:
        yield writer.stream_error(
            APIError(503, "The engine stopped answering.", code="engine_timeout")
        )
        return
    yield writer.stream_end()


def _load_only_reply(
    request: Request, state: ServerState, writer: Writer, chat: ChatRequest
) -> Response:
    """Ollama's empty request, which only loads the model: answered at once (done, "load")."""
    _raise_if_unavailable(state)
    body = writer.body()
    if chat.stream:
        return Response(json.dumps(body).encode() + b"\n", media_type=writer.media_type)
    return JSONResponse(body)


def _warning_headers(chat: ChatRequest) -> dict[str, str]:
    if not chat.ignored:
        return {}
    names = ", ".join(chat.ignored)
    return {"Warning": f'299 gemma-desk "Unknown fields ignored: {names}"'}


class _StreamResponse(StreamingResponse):
    """A streamed response (SSE or NDJSON) that calls `on_close` however it ends
    (disconnect included)."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_close: Callable[[], None],
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(
            content,
            media_type=media_type,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
        )
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _model_json(state: ServerState) -> dict[str, Any]:
    path = state.bridge.model_path or ""
    try:
        created = int(os.path.getmtime(path))
    except OSError:
        created = int(state.started)
    aliases = state.aliases()
    return {
        "id": state.model_id,
        "object": "model",
        "created": created,
        "owned_by": "gemma-desk",
        "aliases": aliases.listed() if aliases is not None else [],
    }


# --- error handlers ------------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = APIError(404, f"No route {request.method} {request.url.path}.", code="not_found")
    elif exc.status_code == 405:
        error = APIError(
            405,
            f"{request.method} is not allowed on {request.url.path}.",
            code="method_not_allowed",
        )
    else:
        error = APIError(exc.status_code, str(exc.detail))
    return _error_response(request, error)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("server error on %s %s", request.method, request.url.path, exc_info=exc)
    error = APIError(500, f"Internal server error: {type(exc).__name__}", code="internal_error")
    return _error_response(request, error)


def _error_response(request: Request, error: APIError) -> Response:
    """OpenAI's error shape, or Ollama's (`{"error": "message"}`) under `/api/`."""
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"error": error.message}, status_code=error.status, headers=error.headers
        )
    return error.response()
