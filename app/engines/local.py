"""The local engine: the model library's turn streamer behind the engine contract.

The options' `response_format` and forced `tool_choice` become a grammar
(`mlx_model.constrained`), built once per model turn and applied as the last logits
processor: the answer is a valid JSON document, or a tool call in Gemma's own syntax.
With thinking on, the thought runs free and the grammar applies after it. A schema the
grammar cannot take is a `GenerationError` of kind "invalid_request".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from app.engines.contract import EngineInfo, LocalModel, ProgressCallback, model_name
from app.options import FunctionChoice, GenerationOptions
from mlx_model.errors import InvalidRequestError
from mlx_model.events import EngineEvent, GenerationError


class LocalEngine:
    """`mlx_model.engine.Engine` with the contract's typed options and info."""

    def __init__(self, engine: Any, spec: LocalModel) -> None:
        self.engine = engine
        self.spec = spec

    @classmethod
    def open(cls, spec: LocalModel, progress: ProgressCallback | None = None) -> LocalEngine:
        """Plan memory and load the checkpoint (raises `MemoryPlanError`, `ConfigError`, ...).

        `spec.path` may also be a Hugging Face repo id already in the standard cache.
        A drafter the spec names must load; one found by itself is left out (with a notice
        in `info().notices`) when it does not fit or does not suit the model.
        """
        from mlx_model import import_serialized
        from mlx_model.hub import find_drafter, resolve_checkpoint

        path = resolve_checkpoint(spec.path)
        drafter = None
        if spec.speculative:
            drafter = (
                resolve_checkpoint(spec.draft_model) if spec.draft_model else find_drafter(path)
            )
        engine_class = import_serialized("mlx_model.engine").Engine
        engine = engine_class.load(
            str(path),
            bits=spec.bits,
            context_length=spec.context_length,
            kv_bits=spec.kv_bits,
            use_checkpoint_template=spec.use_checkpoint_template,
            draft_model=drafter,
            draft_required=bool(spec.draft_model),
            progress=progress,
            **dict(spec.tuning),
        )
        return cls(engine, spec)

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        options: GenerationOptions,
        conversation_id: str | None = None,
        logits_processors: Sequence[Any] = (),
    ) -> Iterator[EngineEvent]:
        """One model turn; `logits_processors` join the sampling chain (before the grammar's)."""
        offered = list(tools) if tools and options.tool_choice != "none" else None
        try:
            constraint = self.output_constraint(offered, options)
        except InvalidRequestError as exc:
            yield GenerationError(exc.kind, str(exc))
            return
        processors = list(logits_processors)
        if constraint is not None:
            processors.append(constraint.logits_processor())
        yield from self.engine.stream(
            list(messages),
            tools=offered,
            enable_thinking=options.enable_thinking,
            max_tokens=options.max_tokens,
            image_budget=options.image_budget,
            stop=list(options.stop),
            context_policy=options.context_policy,
            conversation_id=conversation_id,
            logits_processors=processors,
            **options.sampling(),
        )

    def output_constraint(
        self, tools: Sequence[dict[str, Any]] | None, options: GenerationOptions
    ) -> Any:
        """The turn's `TokenConstraint`, or None when the answer is free
        (`InvalidRequestError` for a constraint that cannot be built)."""
        if not options.constrained:
            return None
        from mlx_model.constrained import GrammarVocabulary, OutputConstraint

        choice = options.tool_choice
        if options.forces_tool_call:
            if not tools:
                raise InvalidRequestError("tool_choice forces a tool call but no tools are given")
            name = choice.name if isinstance(choice, FunctionChoice) else None
            wanted = OutputConstraint.tool_call(tools, name, parallel=options.parallel_tool_calls)
        else:
            fmt = options.response_format
            assert fmt is not None
            if fmt.type == "json_object":
                wanted = OutputConstraint.json_object()
                if fmt.schema is not None:  # JSON mode with a schema (Together, instructor)
                    wanted = OutputConstraint.json_schema(fmt.schema, strict=False)
            else:
                wanted = OutputConstraint.json_schema(fmt.schema or {}, strict=fmt.strict)
            if tools:
                wanted = wanted.with_tools(tools, parallel=options.parallel_tool_calls)
        vocabulary = GrammarVocabulary.for_tokenizer(self.engine.tokenizer, self.engine.vocab_size)
        return vocabulary.constraint(wanted, thinking=options.enable_thinking)

    def cancel(self) -> None:
        self.engine.cancel()

    def cut_to_tokens(self, text: str, max_tokens: int) -> tuple[str, int] | None:
        """None when `text` is at most `max_tokens` tokens, else (its first `max_tokens`
        tokens as text, how many it had); the agent loop caps tool results with it."""
        if len(text) <= max_tokens:  # never more tokens than characters
            return None
        tokenizer = self.engine.tokenizer
        ids = tokenizer.encode_plain(text)
        if len(ids) <= max_tokens:
            return None
        return tokenizer.decode(ids[:max_tokens]), len(ids)

    def drop_caches(self) -> int:
        """Drop every conversation's prompt cache (the next turn prefills its prompt again)."""
        freed = self.engine.prompt_cache.total_bytes()
        self.engine.prompt_cache.clear()
        return int(freed)

    def info(self) -> EngineInfo:
        plan = self.engine.plan
        return EngineInfo(
            kind="local",
            source=self.spec.path,
            name=model_name(self.spec.path),
            context_limit=int(self.engine.context_limit),
            precision=precision_label(plan),
            plan=plan,
            drafter=drafter_name(self.engine.draft_model),
            notices=tuple(self.engine.notices),
        )

    def close(self) -> None:
        self.engine.prompt_cache.clear()


def drafter_name(folder: Any) -> str:
    """The loaded drafter's name (its repo id when it came from the cache); "" for none."""
    from mlx_model.hub import model_name as folder_name

    return folder_name(folder) if folder is not None else ""


def precision_label(plan: Any) -> str:
    """'4-bit', '8-bit', 'bf16' or 'float32' for a memory plan ("" without one)."""
    if plan is None:
        return ""
    if plan.bits is not None:
        return f"{plan.bits}-bit"
    return {2: "bf16", 4: "float32"}.get(plan.dtype_bytes, f"{8 * plan.dtype_bytes}-bit")
