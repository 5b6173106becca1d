"""The turn streamer: chat messages in, the events of one model turn out.

`Engine.load(path, ...)` plans memory and loads the checkpoint (`mlx_model.bundle`);
`engine.stream(messages, ...)` renders the conversation with the chat template (applying
the context policy), reuses the prompt cache for the longest common prefix, runs the
token loop (`mlx_model.generate`: chunked prefill that never cuts an image, with
`PrefillProgress` events between chunks when there are at least `progress_min_tokens`
to prefill, then decode) and parses the ids into answer, thinking and
tool-call events. The turn stops at an eos id of the checkpoint, the end of the turn, a
tool call, a stop string or `max_tokens`. Tool calls are parsed, never executed: running
them and asking again is the caller's agent loop. The last event is `Finished` with
`GenerationStats`, or `GenerationError`.

`Engine.load(path, draft_model=folder)` also loads a speculative drafter
(`mlx_model.speculative`): the memory plan counts it and the turn's decode runs through
`SpeculativeDecodeLoop` (same output as plain greedy decoding, same distribution when
sampling); each turn's `GenerationStats.extra["speculative"]` then holds its counts.

`engine.cancel()` may be called from any thread; it takes effect within one decode step
(or one prefill chunk) and the engine is usable again at once.

Everything MLX runs on the thread that iterates `stream` (the app's engine thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from .errors import (
    CheckpointError,
    ConfigError,
    EngineBusyError,
    GenerationFailure,
    InvalidRequestError,
    MemoryPlanError,
    error_kind,
)
from .events import (
    CONTEXT_POLICIES,
    DEFAULT_MAX_TOKENS,
    ContextPolicy,
    EngineEvent,
    Finished,
    GenerationError,
    GenerationStats,
    StopReason,
    TurnResult,
)
from .generate import DEFAULT_PREFILL_CHUNK, DecodeLoop, decode, plan_chunks, prefill
from .prefill_progress import PREFILL_PROGRESS_MIN_TOKENS, PrefillMeter
from .processing.errors import MediaError
from .prompt import Prompt, fit_context, media_token_ids, render_prompt
from .prompt_cache import CacheEntry, PromptCacheStore, block_safe_length, common_prefix_length
from .sampling import (
    LogitsProcessor,
    SamplingOptions,
    TokenSuppressor,
    make_token_sampler,
    seed_random,
)
from .turn_output import TurnOutput

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 32_768


class Engine:
    """Streams model turns from one loaded model; owns its prompt caches."""

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
        decode_loop: DecodeLoop = decode,
        progress_min_tokens: int | None = None,
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
        self.decode_loop = decode_loop
        self.draft_model: Path | None = None  # the drafter's folder, when one is loaded
        self.notices: list[str] = []  # what the user should know about this load
        # Prefills of at least this many tokens report `PrefillProgress` between chunks.
        self.progress_min_tokens = int(
            PREFILL_PROGRESS_MIN_TOKENS if progress_min_tokens is None else progress_min_tokens
        )
        self.vocab_size = int(text_config.vocab_size)
        # The checkpoint's `suppress_tokens`: first in the logits-processor chain of every
        # token choice (the first one included).
        self.token_suppressor = TokenSuppressor(suppress_tokens or (), self.vocab_size)
        self.prompt_cache = PromptCacheStore(
            lambda: model.make_cache(kv_bits=kv_bits),
            max_entries=max_cached_conversations,
            max_bytes=cache_bytes,
        )
        self._turn_start_id = self.tokenizer.token_to_id(self.tokenizer.special.sot_token)
        self._media_ids = media_token_ids(self.config)
        self._cancel = threading.Event()
        self._busy = threading.Lock()

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
        use_checkpoint_template: bool = False,
        draft_model: str | Path | None = None,
        draft_required: bool = True,
        progress: Callable[[float, str], None] | None = None,
        progress_min_tokens: int | None = None,
        **plan_options: Any,
    ) -> Engine:
        """Plan memory, then load the checkpoint folder and its processor: a ready engine.

        `context_length` defaults to the smaller of the model's limit and 32K tokens.
        `plan_options` go to `plan_memory` (e.g. `device_budget_bytes`); a plan that does not
        fit raises `MemoryPlanError` proposing what would. `apply_limits` sets MLX's memory
        limits from the plan. `use_checkpoint_template` renders with the checkpoint's own
        chat template even when it is a known outdated Gemma 4 one (default: Google's
        canonical format then). `progress(fraction, message)` is told each step of the
        load; `progress_min_tokens` is the prefill length from which turns report
        `PrefillProgress` (default `PREFILL_PROGRESS_MIN_TOKENS`).
        `draft_model`: a drafter checkpoint folder for speculative decoding, planned and
        loaded beside the model. A drafter that does not fit or does not suit the model
        raises (`MemoryPlanError`, `CheckpointError`) unless `draft_required` is False: then
        the model loads alone and `engine.notices` says why. A precision pairing that can
        ruin acceptance is logged and told in `engine.notices` too.
        """
        from . import import_serialized
        from .bundle import load_bundle
        from .memory_plan import plan_checkpoint

        if progress is not None:
            progress(0.0, "Planning memory")
        notices: list[str] = []
        plan_args = dict(
            bits=bits,
            context_length=context_length,
            default_context=DEFAULT_CONTEXT,
            kv_bits=kv_bits,
            group_size=group_size,
            embedding_bits=embedding_bits,
            prefill_chunk=prefill_chunk,
            **plan_options,
        )
        try:
            plan = plan_checkpoint(path, drafter=draft_model, **plan_args)
        except (MemoryPlanError, ConfigError) as exc:
            if draft_model is None or draft_required:
                raise
            plan = plan_checkpoint(path, **plan_args)  # the model alone (raises if it does not fit)
            why = (
                "it does not fit in memory beside the model"
                if isinstance(exc, MemoryPlanError)
                else exc
            )
            notices.append(_drafter_left_out(draft_model, why))
            draft_model = None
        bundle = load_bundle(
            path,
            plan,
            apply_limits=apply_limits,
            dtype=dtype,
            use_checkpoint_template=use_checkpoint_template,
            progress=progress,
        )
        decode_loop: DecodeLoop = decode
        if draft_model is not None:
            if progress is not None:
                progress(0.95, "Loading the drafter (faster answers)")
            speculative = import_serialized("mlx_model.speculative")
            try:
                drafter = speculative.open_drafter(draft_model, bundle.model)
            except (CheckpointError, ConfigError) as exc:
                if draft_required:
                    raise
                notices.append(_drafter_left_out(draft_model, exc))
                draft_model = None
            else:
                for warning in drafter.precision_warnings:
                    log.warning("speculative decoding: %s", warning)
                    notices.append(f"Faster answers may not be faster: {warning}.")
                decode_loop = speculative.SpeculativeDecodeLoop(drafter)
        for notice in notices:
            log.warning("%s", notice)
        engine = cls(
            bundle.model,
            bundle.processor,
            path=bundle.path,
            sampling_defaults=bundle.sampling_defaults,
            eos_token_ids=bundle.eos_token_ids,
            context_limit=plan.context_length,
            prefill_chunk=plan.prefill_chunk,  # the plan may shrink it to fit a long context
            max_cached_conversations=max_cached_conversations,
            cache_bytes=plan.kv_bytes,
            kv_bits=kv_bits,
            plan=plan,
            memory_guard=bundle.memory_guard,
            suppress_tokens=bundle.suppress_tokens,
            decode_loop=decode_loop,
            progress_min_tokens=progress_min_tokens,
        )
        engine.draft_model = Path(draft_model) if draft_model is not None else None
        engine.notices = notices
        return engine

    # -- public surface -----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running turn within one decode step (thread-safe; no-op when idle)."""
        self._cancel.set()

    def generate(self, messages: list[dict[str, Any]], **options: Any) -> TurnResult:
        """Run `stream` to the end and collect its events."""
        result = TurnResult()
        for event in self.stream(messages, **options):
            result.add(event)
        return result

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None = None,
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
        logits_processors: Sequence[LogitsProcessor] = (),
    ) -> Iterator[EngineEvent]:
        """The model's next turn after `messages` (Hugging Face chat shape), as events.

        `tools`: JSON tool schemas offered to the model; a call ends the turn with stop
        reason "tool_call" (the caller runs it and asks again with the result appended).
        Sampling options left at None keep the checkpoint's defaults.
        `context_policy`: "error" (a prompt over the context limit is a `GenerationError`)
        or "drop_oldest" (drop the oldest turns, keeping the system prompt).
        `conversation_id` picks the prompt cache (default: the one sharing the longest prefix).
        `settle_cache`: after `Finished`, prefill the reply as the next prompt will render it
        (thoughts stripped), so the next turn starts from a warm cache.
        `logits_processors` join the sampling options' own chain, after it.
        """
        self._cancel.clear()
        if not self._busy.acquire(blocking=False):
            yield GenerationError(
                EngineBusyError.kind, "the engine is already generating; cancel it first"
            )
            return
        try:
            yield from self._stream(
                list(messages),
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
                extra_processors=list(logits_processors),
            )
        finally:
            self._busy.release()

    # -- one turn -------------------------------------------------------------------------------

    def _stream(
        self,
        conversation: list[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None,
        enable_thinking: bool,
        max_tokens: int,
        sampling: dict[str, Any],
        image_budget: int | None,
        stop: list[str],
        context_policy: str,
        conversation_id: Hashable | None,
        settle_cache: bool,
        extra_processors: list[LogitsProcessor],
    ) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        stats = GenerationStats(context_limit=self.context_limit)
        entry: CacheEntry | None = None
        try:
            options = self._check(tools, max_tokens, sampling, context_policy)
            seed_random(options.seed)
            sampler, processors = make_token_sampler(options, self.vocab_size)
            suppress = [self.token_suppressor] if self.token_suppressor else []
            processors = suppress + processors + extra_processors
            mx.reset_peak_memory()

            def render(messages: list[dict[str, Any]]) -> Prompt:
                return self._render(messages, tools, enable_thinking, image_budget)

            prompt, dropped = fit_context(render, conversation, self.context_limit, context_policy)
            if dropped:
                stats.extra["dropped_messages"] = dropped
            lookup = self.prompt_cache.acquire(prompt.keys, prompt.token_types, conversation_id)
            entry = lookup.entry
            stats.cached_tokens = lookup.reused
            output = TurnOutput(self.processor, prompt.ids, stop)
            tokens: list[int] = []
            # Where the model turn starts: a later prompt (thoughts stripped) or a
            # regenerate rewinds to here, so snapshot the sliding-window caches there.
            snapshot_at = self._turn_start(prompt.ids)
            # A speculative loop starts from the prompt's last hidden state as well.
            speculative = getattr(self.decode_loop, "uses_hidden_state", False)
            last, done = None, lookup.reused
            t0 = time.perf_counter()
            meter = None
            if prompt.length - lookup.reused >= self.progress_min_tokens:
                meter = PrefillMeter(lookup.reused, prompt.length)
            for done, chunk_out in prefill(
                self.model,
                prompt,
                entry,
                start=lookup.reused,
                chunk_size=self.prefill_chunk,
                snapshot_at=snapshot_at,
                memory_guard=self.memory_guard,
                should_stop=self._cancel.is_set,
                return_hidden=speculative,
            ):
                last = chunk_out
                stats.prefilled_tokens = done - lookup.reused
                if meter is not None and done < prompt.length:
                    yield meter.update(done)
            prefill_s = time.perf_counter() - t0
            first_token_at: float | None = None
            reason: StopReason = "cancelled"
            if done == prompt.length and last is not None:
                if meter is not None:
                    yield meter.update(done)
                reason = "length"
                logits, hidden = last if speculative else (last, None)
                extra = {"hidden": hidden, "sampling": options} if speculative else {}
                token_ids = self.decode_loop(
                    self.model,
                    entry,
                    logits,
                    sampler=sampler,
                    logits_processors=processors,
                    history=prompt.ids,
                    max_tokens=min(max_tokens, self.context_limit - entry.length),
                    stop_ids=self.eos_token_ids,
                    should_stop=self._cancel.is_set,
                    **extra,
                )
                # closed as soon as the turn ends, so the cache entry is settled before it is reused
                with contextlib.closing(token_ids):
                    for token in token_ids:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                            prefill_s = first_token_at - t0
                        tokens.append(token)
                        yield from output.feed(token)
                        if output.stop_reason is not None:
                            break
                        if token in self.eos_token_ids:
                            reason = "eos"
                    else:
                        if self._cancel.is_set() and reason != "eos":
                            reason = "cancelled"
                if speculative:
                    stats.extra["speculative"] = self.decode_loop.last_stats.summary()
            yield from output.finish(reason)
            stop_reason = reason if reason == "cancelled" else output.stop_reason or reason
        except Exception as exc:  # noqa: BLE001 - reported as a typed error event
            if entry is not None and not isinstance(exc, GenerationFailure):
                self.prompt_cache.discard(entry)  # a failed forward may leave it inconsistent
            yield GenerationError(error_kind(exc), _message(exc))
            return

        stats.generated_tokens = len(tokens)
        stats.stop_reason = stop_reason
        stats.context_tokens = entry.length
        if first_token_at is not None:
            stats.ttft_s = first_token_at - started
            decode_s = time.perf_counter() - first_token_at
            stats.decode_tps = max(len(tokens) - 1, 0) / decode_s if decode_s > 0 else 0.0
            stats.extra["decode_s"] = decode_s
        stats.extra["prefill_s"] = prefill_s
        stats.prefill_tps = stats.prefilled_tokens / prefill_s if prefill_s > 0 else 0.0
        stats.peak_memory_bytes = int(mx.get_peak_memory())
        yield Finished(stats=stats, token_ids=tuple(tokens))

        if settle_cache and stop_reason not in ("cancelled", "tool_call"):
            # The next prompt has a user message after this reply: its thought is dropped.
            reply = {"role": "assistant", "content": output.text}
            self._settle(entry, [*conversation, reply], tools, enable_thinking, image_budget)

    def _check(
        self,
        tools: Sequence[dict[str, Any]] | None,
        max_tokens: int,
        sampling: dict[str, Any],
        context_policy: str,
    ) -> SamplingOptions:
        if context_policy not in CONTEXT_POLICIES:
            raise InvalidRequestError(
                f"context_policy must be one of {CONTEXT_POLICIES}, got {context_policy!r}"
            )
        if max_tokens < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {max_tokens}")
        if tools is not None and not all(isinstance(t, dict) for t in tools):
            raise InvalidRequestError(
                "tools must be JSON tool schemas; the engine runs no tools (the caller does)"
            )
        try:
            return self.sampling_defaults.replace(**sampling)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(str(exc)) from exc

    def _render(
        self,
        conversation: list[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        enable_thinking: bool,
        image_budget: int | None,
        add_generation_prompt: bool = True,
    ) -> Prompt:
        return render_prompt(
            self.processor,
            conversation,
            self._media_ids,
            tools=tools,
            enable_thinking=enable_thinking,
            image_budget=image_budget,
            add_generation_prompt=add_generation_prompt,
        )

    def _turn_start(self, ids: np.ndarray) -> int:
        if self._turn_start_id is None:
            return int(ids.shape[0])
        hits = np.flatnonzero(ids == self._turn_start_id)
        return int(hits[-1]) if hits.size else int(ids.shape[0])

    # -- cache settling ---------------------------------------------------------------------------

    def _settle(
        self,
        entry: CacheEntry,
        conversation: list[dict[str, Any]],
        tools: Sequence[dict[str, Any]] | None,
        enable_thinking: bool,
        image_budget: int | None,
    ) -> None:
        """Make the cache hold the reply as the next prompt will render it (thoughts stripped).

        Runs after `Finished` was yielded (when the consumer drains the stream), so it is
        off the critical path of both this reply and the next turn's first token.
        """
        try:
            prompt = self._render(
                conversation, tools, enable_thinking, image_budget, add_generation_prompt=False
            )
        except Exception:  # noqa: BLE001 - settling is an optimisation only
            return
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
        for _ in prefill(
            self.model,
            prompt,
            entry,
            start=reached,
            chunk_size=self.prefill_chunk,
            should_stop=self._cancel.is_set,
        ):
            pass


def _drafter_left_out(folder: str | Path, why: Any) -> str:
    from .hub import model_name

    return (
        f"Answers come at the plain speed: the drafter {model_name(folder)} was left out ({why})."
    )


def _message(exc: BaseException) -> str:
    if isinstance(exc, GenerationFailure | MemoryError | MediaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


__all__ = ["CONTEXT_POLICIES", "Engine", "TurnResult", "plan_chunks"]
