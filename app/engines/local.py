"""The local engine: the model library's turn streamer behind the engine contract."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from app.engines.contract import EngineInfo, LocalModel, ProgressCallback, model_name
from app.options import GenerationOptions
from mlx_model.events import EngineEvent


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
        """One model turn; `logits_processors` join the sampling chain (grammar masks...)."""
        return self.engine.stream(
            list(messages),
            tools=list(tools) if tools else None,
            enable_thinking=options.enable_thinking,
            max_tokens=options.max_tokens,
            image_budget=options.image_budget,
            stop=list(options.stop),
            context_policy=options.context_policy,
            conversation_id=conversation_id,
            logits_processors=logits_processors,
            **options.sampling(),
        )

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
