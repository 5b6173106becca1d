"""Gemma 4's multi-token-prediction drafter (`gemma4_unified_assistant`) in MLX.

Mirrors transformers' `Gemma4UnifiedAssistantForCausalLM` (see docs/MODEL.md, "The drafter"):
a few decoder layers with no K/V projections of their own: every layer attends with the
target's keys and values (the last full and the last sliding layer's), from one constant
position. One draft step takes `concat(target_embedding(token), target_hidden)` (each of the
target's width) through `pre_projection`, runs the layers and the final norm, and returns
`post_projection(h)` (the next step's "target hidden") and the logits of the next token:
a tied/dense LM head, or the centroid-routed sparse head (`use_ordered_embeddings`), which
scores only the tokens of the `centroid_intermediate_top_k` best of `num_centroids` clusters.
As in transformers, no final softcapping is applied to the drafter's logits.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .config import FULL, SLIDING, ConfigError, TextConfig, _int, _require
from .gemma4_unified import LanguageModel

MODEL_TYPE = "gemma4_unified_assistant"


@dataclass
class AssistantConfig:
    """The drafter's config.json: a `gemma4_unified_text` decoder plus the projections' sizes."""

    text_config: TextConfig
    backbone_hidden_size: int = 3840
    use_ordered_embeddings: bool = False
    num_centroids: int = 2048
    centroid_intermediate_top_k: int = 32
    tie_word_embeddings: bool = True
    model_type: str = MODEL_TYPE
    quantization: dict[str, Any] | None = None  # MLX-quantized conversions (mlx-lm layout)

    def __post_init__(self) -> None:
        self.backbone_hidden_size = _int(self.backbone_hidden_size, "backbone_hidden_size", 1)
        text = self.text_config
        if any(spec.has_kv_projections for spec in text.layers):
            raise ConfigError(
                "config.json: a drafter's layers all read the target's keys/values: "
                f"`text_config.num_kv_shared_layers` must equal `num_hidden_layers` "
                f"({text.num_hidden_layers}), got {text.num_kv_shared_layers}"
            )
        if self.use_ordered_embeddings:
            self.num_centroids = _int(self.num_centroids, "num_centroids", 1)
            self.centroid_intermediate_top_k = _int(
                self.centroid_intermediate_top_k, "centroid_intermediate_top_k", 1
            )
            if text.vocab_size % self.num_centroids:
                raise ConfigError(
                    f"config.json: `text_config.vocab_size` ({text.vocab_size}) must be a "
                    f"multiple of `num_centroids` ({self.num_centroids})"
                )
            if self.centroid_intermediate_top_k > self.num_centroids:
                raise ConfigError(
                    f"config.json: `centroid_intermediate_top_k` ({self.centroid_intermediate_top_k})"
                    f" must not exceed `num_centroids` ({self.num_centroids})"
                )

    @property
    def layer_types(self) -> set[str]:
        return set(self.text_config.layer_types)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AssistantConfig:
        """Parse an assistant checkpoint's config.json (ConfigError naming the field if bad)."""
        if not isinstance(d, dict):
            raise ConfigError("config.json: top level must be a mapping")
        if d.get("model_type") != MODEL_TYPE:
            raise ConfigError(
                f"config.json: `model_type` is {d.get('model_type')!r}, expected {MODEL_TYPE!r} "
                "(a Gemma 4 unified drafter)"
            )
        text = dict(_require(d, "text_config", ""))
        # transformers: an unset/zero `num_kv_shared_layers` means every layer shares.
        if not text.get("num_kv_shared_layers"):
            text["num_kv_shared_layers"] = _require(text, "num_hidden_layers", "text_config.")
        names = {f.name for f in fields(cls) if f.init} - {"text_config"}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "quantization_config" in d and "quantization" not in d:
            kwargs["quantization"] = d["quantization_config"]
        return cls(text_config=TextConfig.from_dict(text), **kwargs)


@dataclass
class SharedKV:
    """The target's keys/values that the drafter's layers of one type attend to.

    `mask` (broadcastable to (B, heads, 1, keys)) limits a sliding layer to its window;
    `quantized_cache` is the target's `QuantizedKVCache` when `keys`/`values` are its packed
    tuples (it selects quantized attention).
    """

    keys: Any
    values: Any
    mask: mx.array | None = None
    quantized_cache: Any = None


def sliding_window_mask(num_keys: int, window: int) -> mx.array | None:
    """Mask over temporally ordered keys for a drafter sliding layer: the last `window + 1`.

    transformers builds the drafter's sliding mask as a bidirectional window |q - k| <= W
    from the first key, then flips it along the keys: the query sees the W + 1 most recent
    keys. None when every key is visible.
    """
    if num_keys <= window + 1:
        return None
    return (mx.arange(num_keys) >= num_keys - window - 1)[None, None, None, :]


class MaskedEmbedder(nn.Module):
    """Centroid-routed sparse LM head (`Gemma4UnifiedAssistantMaskedEmbedder`).

    `centroids` scores `num_centroids` clusters of `vocab / num_centroids` tokens each
    (`token_ordering` lists each cluster's token ids); only the best `top_k` clusters' tokens
    are scored against the tied embedding. Every other token gets min(scored) - 1.
    """

    def __init__(self, hidden_size: int, vocab_size: int, num_centroids: int, top_k: int):
        super().__init__()
        self.num_centroids = num_centroids
        self.top_k = top_k
        self.per_centroid = vocab_size // num_centroids
        self.vocab_size = vocab_size
        self.centroids = nn.Linear(hidden_size, num_centroids, bias=False)
        self.token_ordering = mx.zeros((vocab_size,), dtype=mx.int32)

    def selected(self, h: mx.array, embedding: nn.Module) -> tuple[mx.array, mx.array]:
        """(token ids [B, L, n], their logits [B, L, n]) of the chosen clusters."""
        B, L, _ = h.shape
        scores = self.centroids(h)
        top = mx.argpartition(-scores, kth=self.top_k - 1, axis=-1)[..., : self.top_k]
        ordering = self.token_ordering.reshape(self.num_centroids, self.per_centroid)
        ids = ordering[top].reshape(B, L, self.top_k * self.per_centroid)
        rows = embedding(ids)  # raw (dequantized) rows of the tied head: [B, L, n, hidden]
        logits = (h[..., None, :].astype(rows.dtype) @ rows.swapaxes(-1, -2)).squeeze(-2)
        return ids, logits

    def __call__(self, h: mx.array, embedding: nn.Module) -> mx.array:
        ids, logits = self.selected(h, embedding)
        B, L = h.shape[:2]
        fill = logits.min() - 1  # one value for the whole batch, as transformers
        out = mx.broadcast_to(fill.astype(logits.dtype), (B, L, self.vocab_size))
        return mx.put_along_axis(out, ids, logits, axis=-1)


class Model(nn.Module):
    """`Gemma4UnifiedAssistantForCausalLM`: one draft step per call (no cache of its own)."""

    def __init__(self, config: AssistantConfig):
        super().__init__()
        self.config = config
        self.model_type = config.model_type
        text = config.text_config
        self.model = LanguageModel(text)
        self.pre_projection = nn.Linear(2 * config.backbone_hidden_size, text.hidden_size, False)
        self.post_projection = nn.Linear(text.hidden_size, config.backbone_hidden_size, False)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)
        if config.use_ordered_embeddings:
            self.masked_embedding = MaskedEmbedder(
                text.hidden_size,
                text.vocab_size,
                config.num_centroids,
                config.centroid_intermediate_top_k,
            )

    @property
    def layers(self) -> list[nn.Module]:
        return self.model.layers

    @property
    def dtype(self) -> mx.Dtype:
        """The activation dtype (norm weights are never quantized)."""
        return self.model.norm.weight.dtype

    @property
    def window(self) -> int:
        """The sliding layers' window as the masks use it (halved + 1 in "all" mode)."""
        return self.config.text_config.attention_window

    def __call__(
        self, inputs_embeds: mx.array, shared_kv: dict[str, SharedKV], position: int | mx.array
    ) -> tuple[mx.array, mx.array]:
        """One draft step.

        `inputs_embeds` [B, L, 2 * backbone]: concat(target's scaled embedding of the last
        token, the target's final-norm hidden state that predicted it). `shared_kv` holds the
        target's keys/values per layer type; `position` is the last token's position.
        Returns (`post_projection` output [B, L, backbone], logits [B, L, vocab]).
        """
        h = self.pre_projection(inputs_embeds.astype(self.dtype))
        L = h.shape[1]
        offset = mx.array(position, dtype=mx.int32) if L == 1 else int(position)
        lm = self.model
        for layer, spec in zip(lm.layers, self.config.text_config.layers, strict=True):
            kv = shared_kv[spec.layer_type]
            h, _ = layer(
                h,
                kv.mask,
                lm._rope_freqs[spec.layer_type],
                offset,
                cache=kv.quantized_cache,
                shared_kv=(kv.keys, kv.values),
            )
        h = lm.norm(h)
        return self.post_projection(h), self.logits(h)

    def logits(self, h: mx.array) -> mx.array:
        """Final-norm hidden states -> next-token logits (no softcapping, as transformers)."""
        if self.config.use_ordered_embeddings:
            return self.masked_embedding(h, self.model.embed_tokens)
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.as_linear(h)
        return self.lm_head(h)

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Checkpoint names (on-disk, transformers-saved, mlx-vlm conversions) -> this tree.

        All of these use the same names; the tied `lm_head` and rotary buffers are dropped and
        `token_ordering` becomes int32 (an index).
        """
        out: dict[str, mx.array] = {}
        for name, value in weights.items():
            if "rotary_emb" in name or name.endswith("embed_scale"):
                continue
            if name.startswith("lm_head.") and self.config.tie_word_embeddings:
                continue
            if name.endswith("token_ordering"):
                value = value.astype(mx.int32)
            out[name] = value
        return out


def layer_kinds(config: AssistantConfig) -> tuple[str, ...]:
    """The target layer types the drafter reads K/V from (full and/or sliding)."""
    return tuple(t for t in (FULL, SLIDING) if t in config.layer_types)


__all__ = [
    "AssistantConfig",
    "MaskedEmbedder",
    "Model",
    "SharedKV",
    "layer_kinds",
    "sliding_window_mask",
]
