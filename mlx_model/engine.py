"""The generation engine: chat messages in, a stream of typed events out.

`Engine.load(path, **plan_options)` plans memory, loads the model and the processor;
`engine.stream(messages, ...)` renders the conversation with the chat template, reuses the
prompt cache for the longest common prefix, prefills the rest in chunks that never cut an
image (with `PrefillProgress` events, cancellable), then decodes token by token until an
eos id of the checkpoint, the end of the turn, a tool call, a stop string or `max_tokens`.
Text is parsed incrementally into answer, thinking and tool-call events. When the caller
passes executable tools, each call is validated, run, appended as a tool response and
generation resumes (up to the registry's step limit). The last event is `Finished` with
`GenerationStats`, or `GenerationError`.

`engine.cancel()` may be called from any thread; it takes effect within one decode step
(or one prefill chunk) and the engine is usable again at once.

Everything MLX runs on the thread that iterates `stream` (the app's engine thread).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlx.core as mx
import numpy as np

from .events import (
    EngineEvent,
    Finished,
    GenerationError,
    GenerationStats,
    PrefillProgress,
    StopReason,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
)
from .prompt_cache import (
    CacheEntry,
    PromptCacheStore,
    audio_features_and_mask,
    block_safe_length,
    prompt_keys,
)
from .sampling import (
    SamplingOptions,
    TokenSuppressor,
    choose_token,
    make_token_sampler,
    seed_random,
)
from .tools import Tool, ToolRegistry, tool_from_function

ContextPolicy = Literal["error", "drop_oldest"]
CONTEXT_POLICIES = ("error", "drop_oldest")
DEFAULT_MAX_TOKENS = 2048
DEFAULT_PREFILL_CHUNK = 512
DEFAULT_CONTEXT = 32_768

# A test seam: given the ids generated so far in this model turn, return an id to force
# (instead of the model's choice) or None. Only tests set it.
TokenOverride = Callable[[Sequence[int]], int | None]


class EngineError(Exception):
    """A generation that cannot run; `kind` is the `GenerationError.kind` it is reported as."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class GenerationResult:
    """Everything one `stream` produced, collected (what `Engine.generate` returns)."""

    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResultEvent] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    stats: GenerationStats | None = None
    error: GenerationError | None = None
    events: list[EngineEvent] = field(default_factory=list)

    def add(self, event: EngineEvent) -> None:
        self.events.append(event)
        if isinstance(event, TextDelta):
            self.text += event.text
        elif isinstance(event, ThinkingDelta):
            self.thinking += event.text
        elif isinstance(event, ToolCallEvent):
            self.tool_calls.append(event.call)
        elif isinstance(event, ToolResultEvent):
            self.tool_results.append(event)
        elif isinstance(event, Finished):
            self.stats = event.stats
            self.token_ids = list(event.token_ids)
        elif isinstance(event, GenerationError):
            self.error = event


@dataclass
class _Prompt:
    """One rendered prompt: the processor's inputs plus what the cache needs to know."""

    inputs: dict[str, Any]
    ids: np.ndarray  # (N,)
    keys: np.ndarray  # (N,) cache keys (media placeholders keyed by content)
    token_types: np.ndarray | None  # (N,) mm_token_type_ids
    text: str | None = None  # the expanded prompt string

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class _Turn:
    """What one model turn (prompt -> stop) produced."""

    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = "eos"
    prefilled: int = 0
    cached: int = 0
    prefill_s: float = 0.0
    first_token_at: float | None = None
    decode_s: float = 0.0


class Engine:
    """Streams generations from one loaded model; owns its prompt caches."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        path: str | Path | None = None,
        sampling_defaults: SamplingOptions | None = None,
        eos_token_ids: Sequence[int] | None = None,
        context_limit: int | None = None,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        max_cached_conversations: int = 4,
        cache_bytes: int | None = None,
        kv_bits: int | None = None,
        plan: Any = None,
        memory_guard: Any = None,
        suppress_tokens: Sequence[int] | None = None,
    ):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.path = Path(path) if path is not None else None
        self.config = model.config
        text_config = self.config.text_config
        self.sampling_defaults = sampling_defaults or SamplingOptions()
        eos = list(eos_token_ids or [])
        for token_id in getattr(self.tokenizer, "eos_token_ids", ()):
            if token_id not in eos:
                eos.append(int(token_id))
        self.eos_token_ids = frozenset(eos)
        self.context_limit = int(context_limit or text_config.max_position_embeddings)
        self.prefill_chunk = int(prefill_chunk)
        self.plan = plan
        self.memory_guard = memory_guard
        self.vocab_size = int(text_config.vocab_size)
        # The checkpoint's `suppress_tokens`, masked out of every token choice (first included).
        self.token_suppressor = TokenSuppressor(suppress_tokens or (), self.vocab_size)
        self.prompt_cache = PromptCacheStore(
            lambda: model.make_cache(kv_bits=kv_bits),
            max_entries=max_cached_conversations,
            max_bytes=cache_bytes,
        )
        special = self.tokenizer.special
        self._turn_start_id = self.tokenizer.token_to_id(special.sot_token)
        self._media_token_ids = {
            "image": self.config.image_token_id,
            "video": self.config.video_token_id,
            "audio": self.config.audio_token_id,
        }
        self._cancel = threading.Event()
        self._busy = threading.Lock()
        self.token_override: TokenOverride | None = None

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        bits: int | None = None,
        context_length: int | None = None,
        kv_bits: int | None = None,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        max_cached_conversations: int = 4,
        apply_limits: bool = True,
        dtype: Any = None,
        group_size: int = 64,
        embedding_bits: int | None = None,
        progress: Callable[[float, str], None] | None = None,
        use_checkpoint_template: bool = False,
        **plan_options: Any,
    ) -> Engine:
        """Plan memory, load the checkpoint folder and its processor, return a ready engine.

        `context_length` defaults to the smaller of the model's limit and 32K tokens.
        `plan_options` go to `plan_memory` (e.g. `device_budget_bytes`); a plan that does not
        fit raises `MemoryPlanError` proposing what would. `apply_limits` sets MLX's memory
        limits from the plan (the app does; tests sharing a process may not want to).
        `progress(fraction, message)` is told each step (for the app's load bar).
        `use_checkpoint_template` renders with the checkpoint's own chat template even when it
        is a known outdated Gemma 4 one (default: Google's canonical format then).
        """

        def report(fraction: float, message: str) -> None:
            if progress is not None:
                progress(fraction, message)

        from .loading import load_model
        from .memory_plan import apply_memory_limits, plan_memory, read_checkpoint_config
        from .processing import Processor
        from .sampling import eos_token_ids, read_generation_config, suppress_token_ids

        path = Path(path)
        report(0.0, "Planning memory")
        config, dtype_bytes, _ = read_checkpoint_config(path)
        limit = config.text_config.max_position_embeddings
        context = int(context_length or min(limit, DEFAULT_CONTEXT))
        plan = plan_memory(
            config,
            bits=bits,
            context_length=context,
            kv_bits=kv_bits,
            group_size=group_size,
            embedding_bits=embedding_bits,
            dtype_bytes=dtype_bytes,
            prefill_chunk=prefill_chunk,
            **plan_options,
        )
        guard = apply_memory_limits(plan).guard if apply_limits else None
        report(0.05, f"Quantizing weights to {bits} bits" if bits else "Mapping weights")
        model = load_model(
            path, bits=bits, group_size=group_size, embedding_bits=embedding_bits, dtype=dtype
        )
        report(0.9, "Loading the tokenizer and processors")
        processor = Processor.from_pretrained(path, use_checkpoint_template=use_checkpoint_template)
        generation_config = read_generation_config(path)
        model_config = _read_json(path / "config.json")
        return cls(
            model,
            processor,
            path=path,
            sampling_defaults=SamplingOptions.from_generation_config(generation_config),
            eos_token_ids=sorted(eos_token_ids(generation_config, model_config)),
            context_limit=context,
            prefill_chunk=plan.prefill_chunk,  # the plan may shrink it to fit a long context
            max_cached_conversations=max_cached_conversations,
            cache_bytes=plan.kv_bytes,
            kv_bits=kv_bits,
            plan=plan,
            memory_guard=guard,
            suppress_tokens=suppress_token_ids(generation_config),
        )

    # -- public surface -----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running generation within one decode step (thread-safe; no-op when idle)."""
        self._cancel.set()

    def generate(self, messages: list[dict[str, Any]], **options: Any) -> GenerationResult:
        """Run `stream` to the end and collect its events."""
        result = GenerationResult()
        for event in self.stream(messages, **options):
            result.add(event)
        return result

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: ToolRegistry | Sequence[Tool | Callable[..., Any] | dict[str, Any]] | None = None,
        enable_thinking: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        image_budget: int | None = None,
        stop: Sequence[str] | str | None = None,
        context_policy: ContextPolicy = "error",
        conversation_id: Hashable | None = None,
        settle_cache: bool = True,
    ) -> Iterator[EngineEvent]:
        """Generate the model's reply to `messages` (Hugging Face chat shape) as events.

        `tools`: a `ToolRegistry` or a list of typed functions / `Tool`s (executed by the
        engine's function-calling loop), or plain JSON tool schemas (offered to the model;
        a call ends generation with stop reason "tool_call" for the caller to run).
        `context_policy`: "error" (a prompt over the context limit is a `GenerationError`)
        or "drop_oldest" (drop the oldest turns, keeping the system prompt).
        `conversation_id` picks the prompt cache (default: the one sharing the longest prefix).
        `settle_cache`: after `Finished`, prefill the reply as the next prompt will render it
        (thoughts stripped), so the next turn starts from a warm cache.
        """
        self._cancel.clear()
        if not self._busy.acquire(blocking=False):
            yield GenerationError("busy", "the engine is already generating; cancel it first")
            return
        try:
            yield from self._stream(
                messages,
                tools=tools,
                enable_thinking=enable_thinking,
                max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else int(max_tokens),
                sampling=dict(
                    temperature=temperature,
                    top_p=top_p,
                    top_k=top_k,
                    min_p=min_p,
                    repetition_penalty=repetition_penalty,
                    seed=seed,
                ),
                image_budget=image_budget,
                stop=[stop] if isinstance(stop, str) else list(stop or []),
                context_policy=context_policy,
                conversation_id=conversation_id,
                settle_cache=settle_cache,
            )
        finally:
            self._busy.release()

    # -- one stream -----------------------------------------------------------------------------

    def _stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: Any,
        enable_thinking: bool,
        max_tokens: int,
        sampling: dict[str, Any],
        image_budget: int | None,
        stop: list[str],
        context_policy: str,
        conversation_id: Hashable | None,
        settle_cache: bool,
    ) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        try:
            if context_policy not in CONTEXT_POLICIES:
                raise EngineError(
                    "invalid_request",
                    f"context_policy must be one of {CONTEXT_POLICIES}, got {context_policy!r}",
                )
            if max_tokens < 1:
                raise EngineError("invalid_request", f"max_tokens must be >= 1, got {max_tokens}")
            try:
                options = self.sampling_defaults.replace(**sampling)
            except (TypeError, ValueError) as exc:
                raise EngineError("invalid_request", str(exc)) from exc
            registry, schemas = _resolve_tools(tools)
        except EngineError as exc:
            yield GenerationError(exc.kind, str(exc))
            return

        seed_random(options.seed)
        sampler, processors = make_token_sampler(options, self.vocab_size)
        mx.reset_peak_memory()
        conversation = [dict(m) for m in messages]
        appended: list[dict[str, Any]] = []
        all_tokens: list[int] = []
        stats = GenerationStats(context_limit=self.context_limit)
        steps = 0
        entry: CacheEntry | None = None
        turn = _Turn()
        remaining = max_tokens
        try:
            while True:
                prompt = self._render(
                    conversation, schemas, enable_thinking, image_budget, context_policy, stats
                )
                turn = _Turn()
                for event in self._run_turn(
                    prompt, turn, sampler, processors, remaining, stop, conversation_id
                ):
                    if isinstance(event, _EntryUsed):
                        entry = event.entry
                        continue
                    yield event
                all_tokens.extend(turn.token_ids)
                remaining -= len(turn.token_ids)
                stats.prefilled_tokens += turn.prefilled
                stats.cached_tokens += turn.cached
                stats.generated_tokens += len(turn.token_ids)
                if stats.ttft_s == 0.0 and turn.first_token_at is not None:
                    stats.ttft_s = turn.first_token_at - started
                stats.extra["prefill_s"] = stats.extra.get("prefill_s", 0.0) + turn.prefill_s
                stats.extra["decode_s"] = stats.extra.get("decode_s", 0.0) + turn.decode_s
                stats.stop_reason = turn.stop_reason
                if (
                    turn.stop_reason != "tool_call"
                    or registry is None
                    or not turn.tool_calls
                    or remaining <= 0
                ):
                    break
                steps += 1
                if steps > registry.max_steps:
                    stats.extra["tool_step_limit"] = registry.max_steps
                    break
                results = registry.execute_all(turn.tool_calls)
                for result in results:
                    yield ToolResultEvent(
                        call=result.call, result=result.result, error=result.error
                    )
                # Gemma's native shape: the responses ride on the assistant message that made
                # the calls (rendered as `<|tool_response>response:NAME{...}<tool_response|>`).
                assistant = _assistant_message(turn)
                assistant["tool_responses"] = [
                    {"name": r.call.name, "response": r.response()} for r in results
                ]
                new_messages = [assistant]
                conversation.extend(new_messages)
                appended.extend(new_messages)
                if self._cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
        except EngineError as exc:
            yield GenerationError(exc.kind, str(exc))
            return
        except MemoryError as exc:
            self._discard(entry)
            yield GenerationError("memory", str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported as a typed error event
            self._discard(entry)
            kind = "media" if type(exc).__name__.endswith("MediaError") else "internal"
            yield GenerationError(kind, f"{type(exc).__name__}: {exc}")
            return

        if stats.stop_reason != "tool_call":
            appended.append(_assistant_message(turn, final=True))
        stats.context_tokens = entry.length if entry is not None else 0
        prefill_s = stats.extra.get("prefill_s", 0.0)
        decode_s = stats.extra.get("decode_s", 0.0)
        stats.prefill_tps = stats.prefilled_tokens / prefill_s if prefill_s > 0 else 0.0
        decoded = max(stats.generated_tokens - 1, 0)
        stats.decode_tps = decoded / decode_s if decode_s > 0 else 0.0
        stats.peak_memory_bytes = int(mx.get_peak_memory())
        stats.extra["messages"] = appended
        stats.extra["tool_steps"] = steps
        yield Finished(stats=stats, token_ids=tuple(all_tokens))

        if settle_cache and entry is not None and stats.stop_reason != "cancelled":
            reply = appended[-1:]
            if reply and not reply[0].get("tool_calls"):
                # The next prompt has a user message after this reply: its thought is dropped.
                reply = [{k: v for k, v in reply[0].items() if k != "reasoning_content"}]
            self._settle(entry, conversation + reply, schemas, enable_thinking, image_budget)

    # -- rendering ------------------------------------------------------------------------------

    def _render(
        self,
        conversation: list[dict[str, Any]],
        schemas: list[dict[str, Any]] | None,
        enable_thinking: bool,
        image_budget: int | None,
        context_policy: str,
        stats: GenerationStats,
        add_generation_prompt: bool = True,
    ) -> _Prompt:
        """Render to the model's inputs; apply the context policy when it is too long."""
        dropped = 0
        while True:
            prompt = self._process(
                conversation, schemas, enable_thinking, image_budget, add_generation_prompt
            )
            if prompt.length < self.context_limit:
                if dropped:
                    stats.extra["dropped_messages"] = dropped
                return prompt
            if context_policy != "drop_oldest":
                raise EngineError(
                    "context_overflow",
                    f"the conversation is {prompt.length:,} tokens but the context limit is "
                    f"{self.context_limit:,}; start a new conversation, shorten it, or use the "
                    "'drop oldest turns' policy",
                )
            shorter = drop_oldest_turn(conversation)
            if shorter is None:
                raise EngineError(
                    "context_overflow",
                    f"the last message alone is {prompt.length:,} tokens, over the context "
                    f"limit of {self.context_limit:,}",
                )
            dropped += len(conversation) - len(shorter)
            conversation[:] = shorter

    def _process(
        self,
        conversation: list[dict[str, Any]],
        schemas: list[dict[str, Any]] | None,
        enable_thinking: bool,
        image_budget: int | None,
        add_generation_prompt: bool = True,
    ) -> _Prompt:
        kwargs: dict[str, Any] = dict(
            add_generation_prompt=add_generation_prompt, enable_thinking=enable_thinking
        )
        if schemas:
            kwargs["tools"] = schemas
        if image_budget is not None:
            kwargs["image_budget"] = image_budget
        inputs = dict(
            self.processor.apply_chat_template(conversation, return_prompt=True, **kwargs)
        )
        text = inputs.pop("prompt", None)
        ids = np.asarray(inputs["input_ids"]).reshape(-1).astype(np.int64)
        types = inputs.get("mm_token_type_ids")
        token_types = None if types is None else np.asarray(types).reshape(-1).astype(np.int64)
        keys = prompt_keys(inputs, self._media_token_ids)
        return _Prompt(inputs=inputs, ids=ids, keys=keys, token_types=token_types, text=text)

    # -- one model turn ---------------------------------------------------------------------------

    def _run_turn(
        self,
        prompt: _Prompt,
        turn: _Turn,
        sampler: Any,
        processors: list[Any],
        max_tokens: int,
        stop: list[str],
        conversation_id: Hashable | None,
    ) -> Iterator[Any]:
        """Prefill what the cache lacks, then decode; yields events (and one `_EntryUsed`)."""
        lookup = self.prompt_cache.acquire(prompt.keys, prompt.token_types, conversation_id)
        entry = lookup.entry
        yield _EntryUsed(entry, lookup.reused)
        turn.cached = lookup.reused
        start = lookup.reused
        total = prompt.length
        # Where the model turn starts: a later prompt (thoughts stripped) or a regenerate
        # rewinds to here, so snapshot the sliding-window caches at this point.
        snapshot_at = self._turn_start(prompt.ids)

        t0 = time.perf_counter()
        logits = None
        for chunk_start, chunk_end in self._chunks(prompt, start, snapshot_at):
            if self._cancel.is_set():
                turn.stop_reason = "cancelled"
                turn.prefill_s = time.perf_counter() - t0
                return
            if chunk_start == snapshot_at:
                entry.mark_snapshot()
            self._check_memory(chunk_end)
            logits = self._forward(prompt, chunk_start, chunk_end, entry)
            turn.prefilled += chunk_end - chunk_start
            if chunk_end < total:
                yield PrefillProgress(done=chunk_end, total=total)
        if snapshot_at == total:
            entry.mark_snapshot()
        assert logits is not None
        if turn.prefilled >= self.prefill_chunk:
            yield PrefillProgress(done=total, total=total)
        turn.prefill_s = time.perf_counter() - t0

        output = _OutputParser(self.processor, prompt.ids, stop)
        history = mx.array(prompt.ids.astype(np.int32)) if processors else None
        generated: list[int] = []
        y = self._choose(logits, history, sampler, processors, generated)
        mx.async_eval(y)
        limit = min(max_tokens, self.context_limit - entry.length)
        reason: StopReason = "length"
        while True:
            if self._cancel.is_set():
                reason = "cancelled"
                break
            token_id = int(y.item())
            if turn.first_token_at is None:
                turn.first_token_at = time.perf_counter()
                turn.prefill_s = turn.first_token_at - t0
            generated.append(token_id)
            is_eos = token_id in self.eos_token_ids
            if not is_eos and len(generated) < limit:
                # Schedule the next step before handling this token's text (overlaps work).
                logits = self.model(mx.array([[token_id]], dtype=mx.int32), cache=entry.caches)
                entry.append([token_id])
                if history is not None:
                    history = mx.concatenate([history, mx.array([token_id], dtype=mx.int32)])
                y = self._choose(logits, history, sampler, processors, generated)
                mx.async_eval(y)
            yield from output.feed(token_id)
            if output.stop_reason is not None or is_eos or len(generated) >= limit:
                reason = "eos" if is_eos else "length"
                break
        yield from output.finish(reason)
        turn.token_ids = generated
        turn.stop_reason = output.stop_reason or reason
        if reason == "cancelled":
            turn.stop_reason = "cancelled"
        turn.text, turn.thinking, turn.tool_calls = output.text, output.thinking, output.tool_calls
        if turn.first_token_at is not None:
            turn.decode_s = time.perf_counter() - turn.first_token_at

    def _choose(self, logits, history, sampler, processors, generated) -> mx.array:
        last = logits[:, -1, :]
        if self.token_suppressor:
            last = self.token_suppressor.apply(last)
        y = choose_token(last, history, sampler, processors)
        if self.token_override is not None:
            forced = self.token_override(list(generated))
            if forced is not None:
                y = mx.array([int(forced)], dtype=mx.uint32)
        return y

    def _turn_start(self, ids: np.ndarray) -> int:
        if self._turn_start_id is None:
            return int(ids.shape[0])
        hits = np.flatnonzero(ids == self._turn_start_id)
        return int(hits[-1]) if hits.size else int(ids.shape[0])

    def _chunks(self, prompt: _Prompt, start: int, split_at: int) -> list[tuple[int, int]]:
        from .cache import prefill_chunks

        block_map = (
            prompt.token_types[None]
            if prompt.token_types is not None
            else np.zeros((1, prompt.length), dtype=np.int64)
        )
        bounds = [start, prompt.length]
        if start < split_at < prompt.length:
            bounds = [start, split_at, prompt.length]
        chunks: list[tuple[int, int]] = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
            chunks.extend(c for c in prefill_chunks(block_map[:, :hi], self.prefill_chunk, lo))
        return chunks

    def _forward(self, prompt: _Prompt, start: int, end: int, entry: CacheEntry) -> mx.array:
        """Run prompt tokens [start, end) through the model into the entry's caches."""
        ids = prompt.ids[start:end][None].astype(np.int32)
        media = _media_for_chunk(prompt.inputs, prompt.ids, start, end, self._media_token_ids)
        if prompt.token_types is not None:
            media["mm_token_type_ids"] = prompt.token_types[None, :end]
        logits = self.model(mx.array(ids), cache=entry.caches, logits_to_keep=1, **media)
        mx.eval(logits, [c.state for c in entry.caches])
        entry.append(prompt.keys[start:end])
        return logits

    def _check_memory(self, total_tokens: int) -> None:
        if self.memory_guard is not None:
            self.memory_guard.check_context(total_tokens)

    def _discard(self, entry: CacheEntry | None) -> None:
        if entry is not None:
            self.prompt_cache.discard(entry)

    # -- cache settling ---------------------------------------------------------------------------

    def _settle(
        self,
        entry: CacheEntry,
        conversation: list[dict[str, Any]],
        schemas: list[dict[str, Any]] | None,
        enable_thinking: bool,
        image_budget: int | None,
    ) -> None:
        """Make the cache hold the reply as the next prompt will render it (thoughts stripped).

        Runs after `Finished` was yielded (when the consumer drains the stream), so it is
        off the critical path of both this reply and the next turn's first token.
        """
        try:
            prompt = self._process(
                conversation, schemas, enable_thinking, image_budget, add_generation_prompt=False
            )
        except Exception:  # noqa: BLE001 - settling is an optimisation only
            return
        from .prompt_cache import common_prefix_length

        matched = common_prefix_length(entry.keys, prompt.keys)
        target = block_safe_length(min(matched, prompt.length), prompt.token_types)
        reached = entry.rewind(target)
        if reached >= prompt.length:
            return
        if (
            prompt.token_types is not None
            and np.isin(prompt.token_types[reached:], (1, 2, 3)).any()
        ):
            return  # media would need re-prefill: leave it to the next turn
        for chunk_start, chunk_end in self._chunks(prompt, reached, prompt.length):
            if self._cancel.is_set():
                return
            self._forward(prompt, chunk_start, chunk_end, entry)


@dataclass(frozen=True)
class _EntryUsed:
    entry: CacheEntry
    reused: int


# --- output parsing --------------------------------------------------------------------------


class _OutputParser:
    """Generated ids -> answer/thinking/tool-call events, with stop strings and stop reason.

    Wraps the processor's streaming detokenizer and incremental `OutputParser`; adds the
    caller's stop strings (answer text is held back while it could still become one). Only
    control token ids are markers: text the model spelled with ordinary tokens is fed as plain.
    """

    def __init__(self, processor: Any, prompt: Any, stop: list[str]):
        self._detok = processor.detokenizer()
        self._parser = processor.output_parser(prompt)
        self._control = processor.tokenizer.special_ids
        self._stop = [s for s in stop if s]
        self._held = ""
        self.text = ""
        self.thinking = ""
        self.tool_calls: list[ToolCall] = []
        self.stop_reason: StopReason | None = None

    def feed(self, token_id: int) -> list[EngineEvent]:
        if self.stop_reason is not None:
            return []
        delta = self._detok.add_token(token_id)
        control = self._control.get(token_id)
        if control is not None and delta.endswith(control):
            parsed = self._parser.feed(delta[: -len(control)], plain=True)
            parsed += self._parser.feed(control)
        else:
            parsed = self._parser.feed(delta, plain=True)
        events = self._convert(parsed)
        if self.stop_reason is None and self._parser.stop_reason is not None:
            self.stop_reason = self._parser.stop_reason
        return events

    def finish(self, reason: StopReason) -> list[EngineEvent]:
        if self.stop_reason == "stop_string":
            return []
        tail = self._detok.finalize()
        events = self._convert(self._parser.feed(tail, plain=True) if tail else [])
        events += self._convert(self._parser.finish(reason))
        if self._held and self.stop_reason != "stop_string":
            events.append(TextDelta(self._held))
            self.text += self._held
            self._held = ""
        if self.stop_reason != "stop_string":
            self.stop_reason = self._parser.stop_reason
        return events

    def _convert(self, parsed: list[Any]) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        for item in parsed:
            if self.stop_reason == "stop_string":
                break
            if isinstance(item, TextDelta):
                events.extend(self._text(item.text))
            elif isinstance(item, ThinkingDelta):
                self.thinking += item.text
                events.append(item)
            elif isinstance(item, ToolCallEvent):
                call = ToolCall(
                    name=item.call.name,
                    arguments=dict(item.call.arguments),
                    id=f"call_{uuid.uuid4().hex[:12]}",
                )
                self.tool_calls.append(call)
                events.append(ToolCallEvent(call))
        return events

    def _text(self, text: str) -> list[EngineEvent]:
        if not self._stop:
            self.text += text
            return [TextDelta(text)] if text else []
        buffer = self._held + text
        for s in self._stop:
            index = buffer.find(s)
            if index >= 0:
                out = buffer[:index]
                self._held = ""
                self.stop_reason = "stop_string"
                self.text += out
                return [TextDelta(out)] if out else []
        keep = 0  # hold back a tail that could be the start of a stop string
        for s in self._stop:
            for n in range(min(len(s) - 1, len(buffer)), 0, -1):
                if buffer.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        out, self._held = (buffer[:-keep], buffer[-keep:]) if keep else (buffer, "")
        self.text += out
        return [TextDelta(out)] if out else []


# --- helpers -----------------------------------------------------------------------------------


def _media_for_chunk(
    inputs: dict[str, Any],
    ids: np.ndarray,
    start: int,
    end: int,
    token_ids: dict[str, int | None],
) -> dict[str, Any]:
    """The media inputs whose placeholder tokens fall in [start, end), in model kwargs."""
    out: dict[str, Any] = {}

    def item_range(token_id: int | None, counts: list[int], kind: str) -> tuple[int, int]:
        before = int((ids[:start] == token_id).sum())
        inside = int((ids[start:end] == token_id).sum())
        bounds = np.concatenate([[0], np.cumsum(counts)])
        if inside == 0:
            return 0, 0
        first = int(np.searchsorted(bounds, before))
        last = int(np.searchsorted(bounds, before + inside))
        if bounds[first] != before or bounds[last] != before + inside:
            raise ValueError(f"a prefill chunk would split a {kind} item")
        return first, last

    if inputs.get("pixel_values") is not None:
        pixels = np.asarray(inputs["pixel_values"])
        positions = np.asarray(inputs["image_position_ids"])
        counts = [int((p != -1).all(axis=-1).sum()) for p in positions]
        first, last = item_range(token_ids["image"], counts, "image")
        if last > first:
            out["pixel_values"] = pixels[first:last]
            out["image_position_ids"] = positions[first:last]
    if inputs.get("pixel_values_videos") is not None:
        frames = np.asarray(inputs["pixel_values_videos"])
        positions = np.asarray(inputs["video_position_ids"])
        frames = frames.reshape(-1, *frames.shape[-2:])
        positions = positions.reshape(-1, *positions.shape[-2:])
        counts = [int((p != -1).all(axis=-1).sum()) for p in positions]
        first, last = item_range(token_ids["video"], counts, "video frame")
        if last > first:
            out["pixel_values_videos"] = frames[first:last]
            out["video_position_ids"] = positions[first:last]
            out["num_frames_per_video"] = [last - first]
    if inputs.get("input_features") is not None:
        features, mask = audio_features_and_mask(inputs)
        rows = features[mask]  # one row per audio token, in order
        token_id = token_ids["audio"]
        before = int((ids[:start] == token_id).sum())
        inside = int((ids[start:end] == token_id).sum())
        if inside:
            out["input_features"] = rows[before : before + inside][None]
    return out


def drop_oldest_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation without its oldest turn (a user message and the replies to it).

    The system prompt and the last user turn are always kept; None when nothing can go.
    """
    head = 1 if messages and messages[0].get("role") in ("system", "developer") else 0
    user_indices = [i for i in range(head, len(messages)) if messages[i].get("role") == "user"]
    if len(user_indices) < 2:
        return None
    cut = user_indices[1]
    return messages[:head] + messages[cut:]


def _resolve_tools(
    tools: Any,
) -> tuple[ToolRegistry | None, list[dict[str, Any]] | None]:
    """(registry that executes calls or None, schemas for the chat template or None)."""
    if tools is None:
        return None, None
    if isinstance(tools, ToolRegistry):
        return (tools, tools.schemas()) if len(tools) else (None, None)
    items = list(tools)
    if not items:
        return None, None
    if all(isinstance(t, dict) for t in items):
        return None, items
    registry = ToolRegistry()
    for item in items:
        if isinstance(item, dict):
            raise EngineError(
                "invalid_request", "mix of executable tools and plain schemas is not supported"
            )
        registry.register(item if isinstance(item, Tool) else tool_from_function(item))
    return registry, registry.schemas()


def _assistant_message(turn: _Turn, final: bool = False) -> dict[str, Any]:
    """The assistant message that records a model turn in the conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.text}
    if turn.thinking:
        message["reasoning_content"] = turn.thinking
    if turn.tool_calls and not final:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in turn.tool_calls
        ]
    return message


def _read_json(path: Path) -> dict[str, Any]:
    import json

    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)
