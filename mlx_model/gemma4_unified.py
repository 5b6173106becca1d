"""The Gemma 4 unified network (`gemma4_unified`) in MLX: decoder, encoder-free vision and audio embedders.

Mirrors transformers' `Gemma4UnifiedForConditionalGeneration` (see docs/MODEL.md for the mapping):
text decoder with sliding/full layers, k_eq_v full layers, proportional RoPE, per-layer scalar,
tied LM head and final softcapping; raw 48x48 pixel patches and raw 640-sample audio frames are
projected into the placeholder slots. Image/video blocks attend bidirectionally as the checkpoint
config says, with Google's semantics by default (sliding layers only; full layers stay causal);
transformers' forward-path semantics (every layer) is `TextConfig.vision_overlay_mode="all_layers"`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .attention import AttentionMask, AttentionOptions, attention
from .cache import block_ids_from_token_types, sliding_cache_past
from .cache import make_cache as _make_cache
from .config import FULL, SLIDING, LayerSpec, ModelConfig, TextConfig, VisionConfig


def _to_mx(x: Any, dtype: mx.Dtype | None = None) -> mx.array | None:
    """MLX array from an MLX/NumPy array (or anything with `.numpy()`, e.g. a CPU torch tensor)."""
    if x is None:
        return None
    if not isinstance(x, mx.array):
        if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
            x = x.numpy()
        x = mx.array(np.asarray(x))
    return x.astype(dtype) if dtype is not None and x.dtype != dtype else x


def _to_np(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, mx.array):
        return np.array(x)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return x.numpy()
    return np.asarray(x)


@partial(mx.compile, shapeless=True)
def _gelu_tanh_mul(gate: mx.array, up: mx.array) -> mx.array:
    return nn.gelu_approx(gate) * up


@partial(mx.compile, shapeless=True)
def _softcap(x: mx.array, cap: mx.array) -> mx.array:
    return mx.tanh(x / cap) * cap


# The decoder layer's elementwise chains around its norms, compiled once (shapeless, so any
# chunk length reuses them). On the GPU they fuse the residual adds into the norm kernels'
# neighbours; on the CPU backend, where `mx.fast.rms_norm` runs as its plain-op fallback,
# they also fuse that fallback's elementwise steps.


def _norm_rope(x, weight, freqs, offset, eps: float):
    """(B, L, heads, d) -> RMS-normed, RoPE-rotated (B, heads, L, d)."""
    x = mx.fast.rms_norm(x, weight, eps).transpose(0, 2, 1, 3)
    d = x.shape[-1]
    return mx.fast.rope(x, d, traditional=False, base=None, scale=1.0, offset=offset, freqs=freqs)


def _keys_values(k_raw, v_raw, k_weight, freqs, offset, eps: float):
    """Projected keys/values -> normed, rotated keys and normed (unscaled) values."""
    values = mx.fast.rms_norm(v_raw, None, eps).transpose(0, 2, 1, 3)
    return _norm_rope(k_raw, k_weight, freqs, offset, eps), values


# Decode steps (one token) run these compiled, with the position offset as an array so one
# trace serves every step; longer chunks run them as they are (a trace per shape would pile
# up). On the CPU backend this fuses the norm and RoPE fallbacks' elementwise ops.
_norm_rope_step = mx.compile(_norm_rope)
_keys_values_step = mx.compile(_keys_values)


@partial(mx.compile, shapeless=True)
def _residual_then_norm(
    x: mx.array, a: mx.array, w_post: mx.array, w_pre: mx.array, eps: float
) -> tuple[mx.array, mx.array]:
    """h = x + norm_post(a); returns (h, norm_pre(h))."""
    h = x + mx.fast.rms_norm(a, w_post, eps)
    return h, mx.fast.rms_norm(h, w_pre, eps)


@partial(mx.compile, shapeless=True)
def _residual_scaled(
    h: mx.array, m: mx.array, w_post: mx.array, scalar: mx.array, eps: float
) -> mx.array:
    """(h + norm_post(m)) * layer_scalar, the scalar cast to the activation dtype."""
    out = h + mx.fast.rms_norm(m, w_post, eps)
    return out * scalar.astype(out.dtype)


def _pairwise_sum(x: mx.array, block: int = 64) -> mx.array:
    """Sum over the last axis in blocks of `block` (zero-padded), then over the block sums.

    A flat float32 reduction over 6,912 values errs ~1e-6 relative; blocked summation keeps it
    near float32 rounding (what torch's pairwise reductions achieve).
    """
    while x.shape[-1] > block:
        n = x.shape[-1]
        pad = -n % block
        if pad:
            x = mx.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
        x = x.reshape(*x.shape[:-1], -1, block).sum(axis=-1)
    return x.sum(axis=-1, keepdims=True)


def layer_norm_fp32(x: mx.array, weight: mx.array, bias: mx.array, eps: float) -> mx.array:
    """LayerNorm with mean and variance-around-the-mean in float32, output in the weight dtype.

    MLX's fused layer_norm loses precision over the 6,912 raw pixel values of a patch (see
    docs/MODEL.md); this two-pass form with blocked sums matches torch to float32 rounding.
    """
    n = x.shape[-1]
    x32 = x.astype(mx.float32)
    centered = x32 - _pairwise_sum(x32) / n
    var = _pairwise_sum(mx.square(centered)) / n
    y = centered * mx.rsqrt(var + eps)
    y = y * weight.astype(mx.float32) + bias.astype(mx.float32)
    return y.astype(weight.dtype)


def linear_blocked(x: mx.array, layer: nn.Module, block: int = 128) -> mx.array:
    """`layer(x)` for a float Linear, with the input width summed in slices of `block`.

    One float32 matmul over a wide input (the 6,912 raw values of a patch, the 640 samples of an
    audio frame) accumulates along the whole width and errs several times float32 rounding
    (1.5e-6 relative at 6,912); partial products over 128-wide slices, added up, stay at torch's
    level (2.5e-7). Quantized and half-precision layers (whose partial products would be
    rounded to 16 bits) and narrow inputs run as they are.
    """
    weight = layer.get("weight")
    if (
        weight is None
        or "scales" in layer
        or weight.dtype != mx.float32
        or x.shape[-1] <= 2 * block
    ):
        return layer(x)
    x = x.astype(weight.dtype)
    out = None
    for start in range(0, x.shape[-1], block):
        part = x[..., start : start + block] @ weight[:, start : start + block].T
        out = part if out is None else out + part
    return out + layer.bias if "bias" in layer else out


def rms_norm_fp32(x: mx.array, eps: float) -> mx.array:
    """Scale-less RMSNorm with the mean of squares summed blockwise in float32 (as
    `layer_norm_fp32`); the output keeps the input dtype."""
    x32 = x.astype(mx.float32)
    y = x32 * mx.rsqrt(_pairwise_sum(mx.square(x32)) / x.shape[-1] + eps)
    return y.astype(x.dtype)


class LayerNorm(nn.Module):
    """torch.nn.LayerNorm (weight and bias) computed by `layer_norm_fp32`."""

    def __init__(self, dims: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = mx.ones((dims,))
        self.bias = mx.zeros((dims,))

    def __call__(self, x: mx.array) -> mx.array:
        return layer_norm_fp32(x, self.weight, self.bias, self.eps)


class MultimodalEmbedder(nn.Module):
    """Scale-less RMSNorm then a bias-free projection into the text hidden size."""

    def __init__(self, in_dims: int, out_dims: int, eps: float):
        super().__init__()
        self.eps = eps
        self.embedding_projection = nn.Linear(in_dims, out_dims, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        dtype = self.embedding_projection.weight.dtype
        if mx.issubdtype(dtype, mx.floating):
            x = x.astype(dtype)
        else:  # quantized projection: compute in its scales' dtype
            x = x.astype(self.embedding_projection.scales.dtype)
        return linear_blocked(rms_norm_fp32(x, self.eps), self.embedding_projection)


class VisionEmbedder(nn.Module):
    """Encoder-free patch embedding: LN -> Dense -> LN -> + factorised 2-D position -> LN."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        dim = config.mm_embed_dim
        self.patch_ln1 = LayerNorm(config.patch_dim, config.layer_norm_eps)
        self.patch_dense = nn.Linear(config.patch_dim, dim, bias=True)
        self.patch_ln2 = LayerNorm(dim, config.layer_norm_eps)
        self.pos_embedding = mx.zeros((config.mm_posemb_size, 2, dim))
        self.pos_norm = LayerNorm(dim, config.layer_norm_eps)

    def __call__(self, pixels: mx.array, positions: mx.array) -> mx.array:
        """pixels [..., patch_dim], positions [..., 2] as (x, y) with -1 for padding."""
        dtype = self.patch_ln1.weight.dtype
        h = self.patch_ln1(pixels.astype(dtype))  # transformers casts pixels to the weight dtype
        h = self.patch_ln2(linear_blocked(h, self.patch_dense))
        valid = (positions != -1).astype(self.pos_embedding.dtype)[..., None]
        clamped = mx.maximum(positions, 0)
        pe = (
            self.pos_embedding[clamped[..., 0], 0] * valid[..., 0, :]
            + self.pos_embedding[clamped[..., 1], 1] * valid[..., 1, :]
        )
        return self.pos_norm(h + pe.astype(h.dtype))


class Attention(nn.Module):
    def __init__(self, config: TextConfig, spec: LayerSpec):
        super().__init__()
        self.spec = spec
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = spec.num_key_value_heads
        self.head_dim = d = spec.head_dim
        self.eps = config.rms_norm_eps
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.n_heads * d, bias=bias)
        self.q_norm = nn.RMSNorm(d, eps=self.eps)
        if spec.has_kv_projections:
            self.k_proj = nn.Linear(config.hidden_size, self.n_kv_heads * d, bias=bias)
            if not spec.k_eq_v:
                self.v_proj = nn.Linear(config.hidden_size, self.n_kv_heads * d, bias=bias)
            self.k_norm = nn.RMSNorm(d, eps=self.eps)
        self.o_proj = nn.Linear(self.n_heads * d, config.hidden_size, bias=bias)

    def __call__(
        self,
        x: mx.array,
        mask: mx.array | str | None,
        rope_freqs: mx.array,
        offset: int | mx.array,
        cache: Any = None,
        shared_kv: tuple[mx.array, mx.array] | None = None,
    ) -> tuple[mx.array, tuple[mx.array, mx.array]]:
        B, L, _ = x.shape
        d = self.head_dim
        if L == 1:  # `offset` is then an array (see `hidden_states`)
            norm_rope, keys_values = _norm_rope_step, _keys_values_step
        else:
            norm_rope, keys_values = _norm_rope, _keys_values
        q_raw = self.q_proj(x).reshape(B, L, self.n_heads, d)
        q = norm_rope(q_raw, self.q_norm.weight, rope_freqs, offset, self.eps)
        if shared_kv is not None:  # KV-shared ("reuse") layer
            keys, values = shared_kv
        else:
            k_raw = self.k_proj(x).reshape(B, L, self.n_kv_heads, d)
            v_raw = k_raw if self.spec.k_eq_v else self.v_proj(x).reshape(B, L, self.n_kv_heads, d)
            keys, values = keys_values(
                k_raw, v_raw, self.k_norm.weight, rope_freqs, offset, self.eps
            )
            if cache is not None:
                keys, values = cache.update_and_fetch(keys, values)
        out = attention(q, keys, values, mask, scale=1.0, cache=cache)
        out = out.transpose(0, 2, 1, 3).reshape(B, L, self.n_heads * d)
        return self.o_proj(out), (keys, values)


class MLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(_gelu_tanh_mul(self.gate_proj(x), self.up_proj(x)))


class DecoderLayer(nn.Module):
    """Sandwich-norm layer; the residual stream is multiplied by `layer_scalar` at the end."""

    def __init__(self, config: TextConfig, spec: LayerSpec):
        super().__init__()
        h, eps = config.hidden_size, config.rms_norm_eps
        self.self_attn = Attention(config, spec)
        self.mlp = MLP(h, spec.intermediate_size)
        self.input_layernorm = nn.RMSNorm(h, eps=eps)
        self.post_attention_layernorm = nn.RMSNorm(h, eps=eps)
        self.pre_feedforward_layernorm = nn.RMSNorm(h, eps=eps)
        self.post_feedforward_layernorm = nn.RMSNorm(h, eps=eps)
        self.layer_scalar = mx.ones((1,))
        self.eps = eps

    def __call__(self, x, mask, rope_freqs, offset, cache=None, shared_kv=None):
        a, kv = self.self_attn(self.input_layernorm(x), mask, rope_freqs, offset, cache, shared_kv)
        h, n = _residual_then_norm(
            x,
            a,
            self.post_attention_layernorm.weight,
            self.pre_feedforward_layernorm.weight,
            self.eps,
        )
        out = _residual_scaled(
            h, self.mlp(n), self.post_feedforward_layernorm.weight, self.layer_scalar, self.eps
        )
        return out, kv


class LanguageModel(nn.Module):
    """Token embedding, decoder stack and final norm (`Gemma4UnifiedTextModel`)."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = [DecoderLayer(config, spec) for spec in config.layers]
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        # RoPE wavelengths per layer type (inf = unrotated "nope" dims), as mx.fast.rope's freqs=.
        self._rope_freqs = {}
        for spec in config.layers:
            if spec.layer_type not in self._rope_freqs:
                self._rope_freqs[spec.layer_type] = mx.array(spec.rope.wavelengths(spec.head_dim))
        # cache slot per layer (reuse layers own no cache)
        self._cache_slot: list[int | None] = []
        slot = 0
        for spec in config.layers:
            self._cache_slot.append(slot if spec.has_kv_projections else None)
            slot += spec.has_kv_projections

    def embed(self, input_ids: mx.array) -> mx.array:
        h = self.embed_tokens(input_ids)
        # sqrt(hidden) rounded to the embedding dtype (62.0 in bf16 for the 12B), as transformers.
        return h * mx.array(self.config.embed_scale, dtype=h.dtype)


class Model(nn.Module):
    """`Gemma4UnifiedForConditionalGeneration` in MLX; call it like transformers' forward."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model_type = config.model_type
        text = config.text_config
        # How attention bounds its memory (`mlx_model.attention`); a runtime setting, not a weight.
        self.attention_options = AttentionOptions()
        self.language_model = LanguageModel(text)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)
        if config.vision_config is not None:
            self.vision_embedder = VisionEmbedder(config.vision_config)
            self.embed_vision = MultimodalEmbedder(
                config.vision_config.output_proj_dims,
                text.hidden_size,
                config.vision_config.rms_norm_eps,
            )
        if config.audio_config is not None:
            self.embed_audio = MultimodalEmbedder(
                config.audio_config.audio_embed_dim,
                text.hidden_size,
                config.audio_config.rms_norm_eps,
            )

    # -- public surface ----------------------------------------------------------------------

    @property
    def layers(self) -> list[DecoderLayer]:
        return self.language_model.layers

    def make_cache(self, kv_bits: int | None = None, kv_group_size: int = 64) -> list[Any]:
        """Fresh caches: rotating (exactly the window) for sliding layers, growing for full ones.

        `kv_bits` (4 or 8) quantizes the full layers' KV cache.
        """
        return _make_cache(self.config.text_config, kv_bits=kv_bits, kv_group_size=kv_group_size)

    def __call__(
        self,
        input_ids: Any,
        pixel_values: Any = None,
        image_position_ids: Any = None,
        pixel_values_videos: Any = None,
        video_position_ids: Any = None,
        input_features: Any = None,
        input_features_mask: Any = None,
        mm_token_type_ids: Any = None,
        cache: list[Any] | None = None,
        num_frames_per_video: Any = None,
        logits_to_keep: int = 0,
        return_hidden: bool = False,
        inputs_embeds: mx.array | None = None,
        **ignored: Any,
    ) -> mx.array | tuple[mx.array, mx.array]:
        """Logits (B, L, V) (or the last `logits_to_keep` positions); with `return_hidden` also
        the final-norm hidden states of the same positions (for the speculative drafter).

        `inputs_embeds` (from `embed_inputs`) replaces the embedding step, e.g. for a prefill
        chunk of a prompt embedded once; `input_ids` is then only used for its shape.
        """
        hidden = self.hidden_states(
            input_ids,
            pixel_values=pixel_values,
            image_position_ids=image_position_ids,
            pixel_values_videos=pixel_values_videos,
            video_position_ids=video_position_ids,
            input_features=input_features,
            input_features_mask=input_features_mask,
            mm_token_type_ids=mm_token_type_ids,
            cache=cache,
            num_frames_per_video=num_frames_per_video,
            inputs_embeds=inputs_embeds,
        )
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.logits(hidden)
        return (logits, hidden) if return_hidden else logits

    def logits(self, hidden: mx.array) -> mx.array:
        """Final-norm hidden states -> softcapped logits through the (tied) LM head."""
        if self.config.tie_word_embeddings:
            out = self.language_model.embed_tokens.as_linear(hidden)
        else:
            out = self.lm_head(hidden)
        cap = self.config.text_config.final_logit_softcapping
        if cap is not None:
            out = _softcap(out, mx.array(cap, dtype=out.dtype))
        return out

    def hidden_states(
        self,
        input_ids: Any,
        pixel_values: Any = None,
        image_position_ids: Any = None,
        pixel_values_videos: Any = None,
        video_position_ids: Any = None,
        input_features: Any = None,
        input_features_mask: Any = None,
        mm_token_type_ids: Any = None,
        cache: list[Any] | None = None,
        num_frames_per_video: Any = None,
        inputs_embeds: mx.array | None = None,
    ) -> mx.array:
        """The final-norm hidden states (B, L, hidden)."""
        if inputs_embeds is not None:
            h = inputs_embeds
        else:
            h = self.embed_inputs(
                input_ids,
                pixel_values=pixel_values,
                image_position_ids=image_position_ids,
                pixel_values_videos=pixel_values_videos,
                video_position_ids=video_position_ids,
                input_features=input_features,
                input_features_mask=input_features_mask,
                num_frames_per_video=num_frames_per_video,
            )
        B, L = h.shape[:2]
        lm = self.language_model
        text = self.config.text_config
        if cache is None:
            cache = [None] * sum(s is not None for s in lm._cache_slot)
        offset, sliding_past = _cache_offsets(cache, text)
        masks = self._make_masks(L, offset, sliding_past, mm_token_type_ids, B)
        # One-token steps give RoPE the position as an array, made once for all layers: the
        # compiled step functions then reuse one trace for every position.
        rope_offset = mx.array(offset, dtype=mx.int32) if L == 1 else offset

        shared: dict[str, tuple[mx.array, mx.array]] = {}
        for layer, spec, slot in zip(lm.layers, text.layers, lm._cache_slot, strict=True):
            h, kv = layer(
                h,
                masks[spec.layer_type],
                lm._rope_freqs[spec.layer_type],
                rope_offset,
                cache=cache[slot] if slot is not None else None,
                shared_kv=shared.get(spec.layer_type) if spec.kv_sharing == "reuse" else None,
            )
            if spec.kv_sharing == "store":
                shared[spec.layer_type] = kv
        return lm.norm(h)

    # -- inputs ------------------------------------------------------------------------------

    def embed_inputs(
        self,
        input_ids: Any,
        pixel_values: Any = None,
        image_position_ids: Any = None,
        pixel_values_videos: Any = None,
        video_position_ids: Any = None,
        input_features: Any = None,
        input_features_mask: Any = None,
        num_frames_per_video: Any = None,
    ) -> mx.array:
        """Scaled text embeddings with image, video and audio features scattered into their slots."""
        cfg = self.config
        # Stay lazy (no host sync) for plain token ids: decode loops pipeline on this.
        ids = _to_mx(input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        B, L = ids.shape
        placeholder_ids = [
            t for t in (cfg.image_token_id, cfg.video_token_id, cfg.audio_token_id) if t is not None
        ]
        if placeholder_ids:
            # Placeholder ids may be out of vocabulary: look up the pad id (overwritten below).
            placeholder = ids == placeholder_ids[0]
            for tid in placeholder_ids[1:]:
                placeholder = placeholder | (ids == tid)
            ids = mx.where(placeholder, cfg.text_config.pad_token_id, ids)
        h = self.language_model.embed(ids)

        merges = []
        if pixel_values is not None:
            merges.append(
                (
                    "image",
                    cfg.image_token_id,
                    self._vision_features(pixel_values, image_position_ids),
                )
            )
        if pixel_values_videos is not None:
            if num_frames_per_video is None:
                raise ValueError(
                    "`num_frames_per_video` is required with `pixel_values_videos` (the frames "
                    "of all videos are concatenated along one axis)"
                )
            merges.append(
                (
                    "video",
                    cfg.video_token_id,
                    self._vision_features(pixel_values_videos, video_position_ids),
                )
            )
        if input_features is not None:
            merges.append(
                (
                    "audio",
                    cfg.audio_token_id,
                    self._audio_features(input_features, input_features_mask),
                )
            )
        if not merges:
            return h
        ids_np = np.atleast_2d(_to_np(input_ids)).astype(np.int64)
        flat = h.reshape(B * L, -1)
        for name, token_id, feats in merges:
            slots = np.flatnonzero(ids_np.reshape(-1) == token_id) if token_id is not None else []
            if len(slots) != feats.shape[0]:
                raise ValueError(
                    f"{name} features and {name} tokens do not match: the prompt has {len(slots)} "
                    f"{name} placeholder tokens but the inputs give {feats.shape[0]} {name} features"
                )
            flat[mx.array(slots.astype(np.int32))] = feats.astype(flat.dtype)
        return flat.reshape(B, L, -1)

    def _vision_features(self, pixels: Any, positions: Any) -> mx.array:
        """Rows of the non-padding patches, in order (the embedder is per patch, so padding
        patches are dropped before it runs)."""
        if getattr(self, "vision_embedder", None) is None:
            raise ValueError("image/video inputs given, but the checkpoint has no vision_config")
        if positions is None:
            raise ValueError("`image_position_ids`/`video_position_ids` are required with pixels")
        pos_np = _to_np(positions).astype(np.int64)
        pix = _to_mx(pixels)
        patch_dim = pix.shape[-1]
        if patch_dim != self.config.vision_config.patch_dim:
            raise ValueError(
                f"pixel patches have {patch_dim} values, the checkpoint expects "
                f"{self.config.vision_config.patch_dim}"
            )
        if pos_np.shape[:-1] != tuple(pix.shape[:-1]) or pos_np.shape[-1] != 2:
            raise ValueError(
                f"position ids of shape {pos_np.shape} do not match pixels of shape {pix.shape}"
            )
        pos_flat = pos_np.reshape(-1, 2)
        keep = np.flatnonzero((pos_flat != -1).all(axis=-1))
        keep_mx = mx.array(keep.astype(np.int32))
        rows = pix.reshape(-1, patch_dim)[keep_mx]
        pos_rows = mx.array(pos_flat[keep].astype(np.int32))
        return self.embed_vision(self.vision_embedder(rows, pos_rows))

    def _audio_features(self, features: Any, mask: Any) -> mx.array:
        if getattr(self, "embed_audio", None) is None:
            raise ValueError("audio inputs given, but the checkpoint has no audio_config")
        feats = _to_mx(features)
        if feats.ndim == 2:
            feats = feats[None]
        n, t, dim = feats.shape
        rows = feats.reshape(n * t, dim)
        if mask is not None:
            keep = np.flatnonzero(_to_np(mask).astype(bool).reshape(-1))
            if keep.size != n * t:
                rows = rows[mx.array(keep.astype(np.int32))]
        return self.embed_audio(rows)

    # -- masks -------------------------------------------------------------------------------

    def _make_masks(
        self, L: int, offset: int, sliding_past: int, mm_token_type_ids: Any, batch: int
    ) -> dict[str, AttentionMask | mx.array | None]:
        """One mask per layer type for this forward: an `AttentionMask` (built lazily, by the
        attention path that runs) for causal configs, None on one-token steps."""
        text = self.config.text_config
        W = text.attention_window
        if not text.is_causal:  # "all": bidirectional (used by drafter-style configs only)
            q = mx.arange(L)[:, None]
            k = mx.arange(L)[None]
            return {FULL: None, SLIDING: mx.abs(q - k) <= W}
        if L == 1:
            return {FULL: None, SLIDING: None}  # decode: the rotating buffer is exactly the window

        blocks = None
        if mm_token_type_ids is not None and text.vision_overlay is not None:
            types = np.atleast_2d(_to_np(mm_token_type_ids))
            if types.shape[-1] != L:  # ids of the whole sequence, read by absolute position
                if types.shape[-1] < offset + L:
                    raise ValueError(
                        f"mm_token_type_ids has length {types.shape[-1]}; expected the chunk "
                        f"length {L} or at least the sequence length so far ({offset + L})"
                    )
                types = types[:, offset : offset + L]
            ids = block_ids_from_token_types(types)
            if (ids >= 0).any():
                blocks = mx.array(ids.astype(np.int32))  # (B or 1, L)

        options = self.attention_options
        full = AttentionMask(offset, L, 0, options=options)
        sliding = AttentionMask(offset, L, offset - sliding_past, window=W, options=options)
        if blocks is not None:
            if text.vision_overlay == "all_layers":  # transformers' forward path: ORed onto both
                full = AttentionMask(offset, L, 0, blocks=blocks, overlay="or", options=options)
                sliding = AttentionMask(
                    offset, L, offset - sliding_past, window=W, blocks=blocks, overlay="or",
                    options=options,
                )  # fmt: skip
            else:  # Google's: full layers causal; sliding: |k - q| < W AND (causal OR same_block)
                sliding = AttentionMask(
                    offset, L, offset - sliding_past, window=W, window_ahead=True, blocks=blocks,
                    overlay="within_window", options=options,
                )  # fmt: skip
        return {FULL: full, SLIDING: sliding}

    # -- weights -----------------------------------------------------------------------------

    def sanitize(self, weights: dict[str, mx.array]) -> dict[str, mx.array]:
        """Checkpoint names (on-disk, transformers-saved or mlx-vlm) -> this module tree."""
        out: dict[str, mx.array] = {}
        for name, value in weights.items():
            if "rotary_emb" in name or name.endswith("embed_scale"):
                continue
            if name.startswith("lm_head.") and self.config.tie_word_embeddings:
                continue
            new = _rename(name)
            if new is None:
                continue
            out[new] = value
        return out


_RENAMES = (
    # transformers' in-memory names (save_pretrained without the reverse mapping)
    (
        "model.embed_vision.multimodal_embedder.embedding_projection.",
        "embed_vision.embedding_projection.",
    ),
    ("model.embed_vision.patch_", "vision_embedder.patch_"),
    ("model.embed_vision.pos_", "vision_embedder.pos_"),
    # on-disk checkpoint names
    ("model.language_model.", "language_model."),
    ("model.vision_embedder.", "vision_embedder."),
    ("model.embed_vision.", "embed_vision."),
    ("model.embed_audio.", "embed_audio."),
    # mlx-vlm's converted layout
    ("language_model.model.", "language_model."),
    ("language_model.lm_head.", "lm_head."),
)


def _rename(name: str) -> str | None:
    for old, new in _RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def _cache_offsets(cache: list[Any], text: TextConfig) -> tuple[int, int]:
    """(tokens already processed, past keys a sliding layer sees in a multi-token chunk)."""
    full = sliding = None
    slot = 0
    for spec in text.layers:
        if not spec.has_kv_projections:
            continue
        c = cache[slot]
        slot += 1
        if c is None:
            continue
        if spec.is_sliding and sliding is None:
            sliding = c
        elif not spec.is_sliding and full is None:
            full = c
    ref = full if full is not None else sliding
    offset = int(ref.offset) if ref is not None else 0
    past = sliding_cache_past(sliding, text.attention_window) if sliding is not None else offset
    return offset, past
