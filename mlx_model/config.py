"""Configuration of the Gemma 4 unified model, read from a checkpoint's config.json.

Accepts both layouts that exist in the wild: the original checkpoint's (`global_head_dim`,
`num_global_key_value_heads`, `eoa_token_index`) and the one transformers' `save_pretrained`
writes (`per_layer_config`: layer index -> {head_dim, num_key_value_heads}). Every per-layer
setting the network needs is derived here once (`TextConfig.layers`), following
`Gemma4UnifiedTextConfig.__post_init__` in transformers. Bad configs raise `ConfigError`,
whose message names the offending field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

MODEL_TYPE = "gemma4_unified"
SLIDING = "sliding_attention"
FULL = "full_attention"
LAYER_TYPES = (SLIDING, FULL)

# Semantics of the bidirectional vision overlay when the checkpoint asks for one
# (`use_bidirectional_attention: "vision"`; see docs/MODEL.md, "Masks"):
# "sliding_only" = Google's (google-deepmind/gemma `gemma4/_config.py`, vLLM, and transformers'
#                  `create_masks_for_vision_model`): full layers stay causal, sliding layers use
#                  window AND (causal OR same_block). The default.
# "all_layers"   = transformers' forward/generate path (and mlx-vlm): the overlay is ORed onto both
#                  the full and the sliding masks (a block ignores the window). Opt-in.
# Without "vision" in the config there is no overlay at all (plain causal), in either mode.
VISION_OVERLAY_MODES = ("sliding_only", "all_layers")
DEFAULT_VISION_OVERLAY_MODE = "sliding_only"

_SUPPORTED_ROPE_TYPES = ("default", "proportional")
_SUPPORTED_ACTIVATIONS = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_approx")
_DEFAULT_ROPE = {
    SLIDING: {"rope_type": "default", "rope_theta": 10_000.0},
    FULL: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
}


class ConfigError(ValueError):
    """A checkpoint config that is unknown, incomplete or inconsistent; the message names the field."""


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise ConfigError(f"config.json: missing required field `{where}{key}`")
    return d[key]


def _int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(
            f"config.json: field `{name}` must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


@dataclass(frozen=True)
class RopeSpec:
    """RoPE of one layer type: `default` (all dims rotate) or `proportional` (partial, 0-padded)."""

    rope_type: str
    theta: float
    partial_rotary_factor: float = 1.0
    factor: float = 1.0

    def inv_freq(self, head_dim: int) -> np.ndarray:
        """The head_dim/2 inverse frequencies, float32, exactly as transformers computes them."""
        half = head_dim // 2
        if self.rope_type == "default":
            exps = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim
            return (1.0 / (np.float32(self.theta) ** exps)).astype(np.float32)
        angles = int(self.partial_rotary_factor * head_dim // 2)
        exps = np.arange(0, 2 * angles, 2, dtype=np.int64).astype(np.float32) / head_dim
        rotated = 1.0 / (np.float32(self.theta) ** exps)
        inv = np.concatenate([rotated, np.zeros(half - angles, dtype=np.float32)])
        return (inv / np.float32(self.factor)).astype(np.float32)

    def wavelengths(self, head_dim: int) -> np.ndarray:
        """1/inv_freq (inf where the angle is 0): the `freqs=` argument of `mx.fast.rope`."""
        inv = self.inv_freq(head_dim).astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(inv > 0, 1.0 / inv, np.inf).astype(np.float32)


@dataclass(frozen=True)
class LayerSpec:
    """Everything one decoder layer needs, derived from the text config."""

    index: int
    layer_type: str
    head_dim: int
    num_key_value_heads: int
    k_eq_v: bool  # no v_proj: values are the raw k_proj output (full layers only)
    kv_sharing: str | None  # None, "store" or "reuse"
    rope: RopeSpec
    sliding_window: int | None  # effective window (keys q-W < k <= q), None on full layers
    intermediate_size: int

    @property
    def is_sliding(self) -> bool:
        return self.layer_type == SLIDING

    @property
    def has_kv_projections(self) -> bool:
        return self.kv_sharing != "reuse"


@dataclass
class TextConfig:
    """The decoder (`Gemma4UnifiedTextConfig`), plus the derived `layers`."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    global_head_dim: int = 512
    num_global_key_value_heads: int | None = None
    hidden_activation: str = "gelu_pytorch_tanh"
    max_position_embeddings: int = 262_144
    rms_norm_eps: float = 1e-6
    pad_token_id: int = 0
    eos_token_id: int | list[int] | None = 1
    bos_token_id: int | None = 2
    tie_word_embeddings: bool = True
    rope_parameters: dict[str, dict[str, Any]] | None = None
    attention_bias: bool = False
    sliding_window: int = 1024
    layer_types: list[str] | None = None
    final_logit_softcapping: float | None = None
    # Absent means none (Google's config default; transformers' class default is "vision").
    use_bidirectional_attention: str | None = None
    attention_k_eq_v: bool = False
    num_kv_shared_layers: int = 0
    use_double_wide_mlp: bool = False
    per_layer_config: dict[int, dict[str, int]] | None = None
    # Not in config.json: which semantics the vision overlay follows (see above).
    vision_overlay_mode: str = DEFAULT_VISION_OVERLAY_MODE
    layers: list[LayerSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = "text_config."
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "global_head_dim",
            "sliding_window",
        ):
            setattr(self, name, _int(getattr(self, name), p + name, minimum=1))
        self.num_kv_shared_layers = _int(self.num_kv_shared_layers, p + "num_kv_shared_layers")
        # Equal to num_hidden_layers only in a drafter, whose every layer reads the target's K/V.
        if self.num_kv_shared_layers > self.num_hidden_layers:
            raise ConfigError(
                f"config.json: `{p}num_kv_shared_layers` ({self.num_kv_shared_layers}) must not "
                f"exceed `{p}num_hidden_layers` ({self.num_hidden_layers})"
            )
        if self.hidden_activation not in _SUPPORTED_ACTIVATIONS:
            raise ConfigError(
                f"config.json: unsupported `{p}hidden_activation` {self.hidden_activation!r}"
            )
        if self.use_bidirectional_attention not in (None, "vision", "all"):
            raise ConfigError(
                f"config.json: `{p}use_bidirectional_attention` must be null, 'vision' or 'all', "
                f"got {self.use_bidirectional_attention!r}"
            )
        if self.vision_overlay_mode not in VISION_OVERLAY_MODES:
            raise ConfigError(
                f"`vision_overlay_mode` must be one of {VISION_OVERLAY_MODES}, "
                f"got {self.vision_overlay_mode!r}"
            )
        if self.final_logit_softcapping is not None and not self.final_logit_softcapping > 0:
            raise ConfigError(f"config.json: `{p}final_logit_softcapping` must be > 0 or null")
        self.layer_types = self._resolve_layer_types()
        self.rope_parameters = self._resolve_rope()
        self.per_layer_config = self._resolve_per_layer()
        self.layers = self._derive_layers()

    # -- derivations -------------------------------------------------------------------------

    def _resolve_layer_types(self) -> list[str]:
        n = self.num_hidden_layers
        if self.layer_types is None:
            types = [SLIDING if (i + 1) % 6 else FULL for i in range(n)]
        else:
            types = list(self.layer_types)
            if len(types) != n:
                raise ConfigError(
                    f"config.json: `text_config.layer_types` has {len(types)} entries but "
                    f"`text_config.num_hidden_layers` is {n}"
                )
            bad = [t for t in types if t not in LAYER_TYPES]
            if bad:
                raise ConfigError(
                    f"config.json: unknown entry {bad[0]!r} in `text_config.layer_types`"
                )
        types[-1] = FULL  # transformers forces the last layer to full attention
        return types

    def _resolve_rope(self) -> dict[str, dict[str, Any]]:
        params = self.rope_parameters if self.rope_parameters is not None else _DEFAULT_ROPE
        if not isinstance(params, dict):
            raise ConfigError("config.json: `text_config.rope_parameters` must be a mapping")
        for layer_type in set(self.layer_types):
            name = f"text_config.rope_parameters.{layer_type}"
            entry = params.get(layer_type)
            if not isinstance(entry, dict):
                raise ConfigError(f"config.json: missing field `{name}`")
            rope_type = entry.get("rope_type", "default")
            if rope_type not in _SUPPORTED_ROPE_TYPES:
                raise ConfigError(f"config.json: unsupported `{name}.rope_type` {rope_type!r}")
            if "rope_theta" not in entry:
                raise ConfigError(f"config.json: missing field `{name}.rope_theta`")
            prf = entry.get("partial_rotary_factor", 1.0)
            if not 0 < prf <= 1:
                raise ConfigError(f"config.json: `{name}.partial_rotary_factor` must be in (0, 1]")
        return params

    def _resolve_per_layer(self) -> dict[int, dict[str, int]]:
        n = self.num_hidden_layers
        if self.per_layer_config is None:
            # transformers: every full layer gets `global_head_dim`, and with k_eq_v also
            # `num_global_key_value_heads` KV heads.
            overrides: dict[str, int] = {"head_dim": self.global_head_dim}
            if self.attention_k_eq_v and self.num_global_key_value_heads is not None:
                overrides["num_key_value_heads"] = _int(
                    self.num_global_key_value_heads, "text_config.num_global_key_value_heads", 1
                )
            return {i: dict(overrides) for i, t in enumerate(self.layer_types) if t == FULL}
        if not isinstance(self.per_layer_config, dict):
            raise ConfigError("config.json: `text_config.per_layer_config` must be a mapping")
        resolved: dict[int, dict[str, int]] = {}
        for key, entry in self.per_layer_config.items():
            name = f"text_config.per_layer_config.{key}"
            if isinstance(key, str) and key in LAYER_TYPES:
                indices = [i for i, t in enumerate(self.layer_types) if t == key]
            else:
                try:
                    idx = int(key)
                except (TypeError, ValueError):
                    raise ConfigError(f"config.json: bad layer key in `{name}`") from None
                if not 0 <= idx < n:
                    raise ConfigError(f"config.json: layer index out of range in `{name}`")
                indices = [idx]
            if not isinstance(entry, dict):
                raise ConfigError(f"config.json: `{name}` must be a mapping")
            for k, v in entry.items():
                if k not in ("head_dim", "num_key_value_heads"):
                    raise ConfigError(f"config.json: unsupported per-layer field `{name}.{k}`")
                for i in indices:
                    resolved.setdefault(i, {})[k] = _int(v, f"{name}.{k}", 1)
        return resolved

    def kv_sharing_modes(self) -> list[str | None]:
        """None / "reuse" / "store" per layer, as `Gemma4UnifiedTextConfig.kv_sharing_modes`."""
        n, shared = self.num_hidden_layers, self.num_kv_shared_layers
        if shared == 0:
            return [None] * n
        if shared == n:  # a drafter: every layer reuses K/V handed in from outside
            return ["reuse"] * n
        first = n - shared
        modes: list[str | None] = [None if i < first else "reuse" for i in range(n)]
        producers = self.layer_types[:first]
        if set(producers) != set(self.layer_types):
            raise ConfigError(
                "config.json: `text_config.num_kv_shared_layers` leaves a layer type with no "
                "earlier layer to share keys/values from"
            )
        for layer_type in set(self.layer_types):
            last = max(i for i, t in enumerate(producers) if t == layer_type)
            modes[last] = "store"
        return modes

    def _derive_layers(self) -> list[LayerSpec]:
        modes = self.kv_sharing_modes()
        window = self.sliding_window
        if self.use_bidirectional_attention == "all":
            window = window // 2 + 1  # transformers' exclusive-bound convention
        layers = []
        for i, layer_type in enumerate(self.layer_types):
            over = self.per_layer_config.get(i, {})
            head_dim = over.get("head_dim", self.head_dim)
            kv_heads = over.get("num_key_value_heads", self.num_key_value_heads)
            if self.num_attention_heads % kv_heads:
                raise ConfigError(
                    f"config.json: `text_config.num_attention_heads` ({self.num_attention_heads}) "
                    f"is not a multiple of layer {i}'s num_key_value_heads ({kv_heads})"
                )
            if head_dim % 2:
                raise ConfigError(f"config.json: layer {i}'s head_dim ({head_dim}) must be even")
            entry = self.rope_parameters[layer_type]
            rope = RopeSpec(
                rope_type=entry.get("rope_type", "default"),
                theta=float(entry["rope_theta"]),
                partial_rotary_factor=float(entry.get("partial_rotary_factor", 1.0)),
                factor=float(entry.get("factor", 1.0)),
            )
            double = self.use_double_wide_mlp and modes[i] == "reuse"
            layers.append(
                LayerSpec(
                    index=i,
                    layer_type=layer_type,
                    head_dim=head_dim,
                    num_key_value_heads=kv_heads,
                    k_eq_v=bool(self.attention_k_eq_v) and layer_type == FULL,
                    kv_sharing=modes[i],
                    rope=rope,
                    sliding_window=window if layer_type == SLIDING else None,
                    intermediate_size=self.intermediate_size * (2 if double else 1),
                )
            )
        return layers

    @property
    def embed_scale(self) -> float:
        """sqrt(hidden_size); the model rounds it to the embedding weight's dtype."""
        return math.sqrt(self.hidden_size)

    @property
    def vision_overlay(self) -> str | None:
        """Where image/video blocks attend bidirectionally: None (plain causal everywhere: the
        config has no `"vision"`), "sliding_only" (the default) or "all_layers" (the switch)."""
        if self.use_bidirectional_attention != "vision":
            return None
        return self.vision_overlay_mode

    @property
    def is_causal(self) -> bool:
        return self.use_bidirectional_attention != "all"

    @property
    def attention_window(self) -> int:
        """The effective sliding window (halved+1 in the "all" bidirectional mode)."""
        if self.use_bidirectional_attention == "all":
            return self.sliding_window // 2 + 1
        return self.sliding_window

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> TextConfig:
        if not isinstance(d, dict):
            raise ConfigError("config.json: `text_config` must be a mapping")
        model_type = d.get("model_type", "gemma4_unified_text")
        if model_type != "gemma4_unified_text":
            raise ConfigError(
                f"config.json: `text_config.model_type` is {model_type!r}, expected "
                "'gemma4_unified_text'"
            )
        for key in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
        ):
            _require(d, key, "text_config.")
        names = {f.name for f in fields(cls) if f.init}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs.update(overrides)
        return cls(**kwargs)


@dataclass
class VisionConfig:
    """The encoder-free vision embedder (`Gemma4UnifiedVisionConfig`)."""

    patch_size: int = 16
    pooling_kernel_size: int = 3
    mm_embed_dim: int = 3840
    mm_posemb_size: int = 1120
    rms_norm_eps: float = 1e-6
    output_proj_dims: int = 3840
    num_soft_tokens: int | None = None  # the checkpoint's default image budget (only a default)
    layer_norm_eps: float = 1e-5  # torch nn.LayerNorm default, not in config.json

    def __post_init__(self) -> None:
        p = "vision_config."
        for name in ("patch_size", "pooling_kernel_size", "mm_embed_dim", "mm_posemb_size"):
            setattr(self, name, _int(getattr(self, name), p + name, 1))
        self.output_proj_dims = _int(self.output_proj_dims, p + "output_proj_dims", 1)
        if self.output_proj_dims != self.mm_embed_dim:
            raise ConfigError(
                f"config.json: `{p}output_proj_dims` ({self.output_proj_dims}) must equal "
                f"`{p}mm_embed_dim` ({self.mm_embed_dim}): the projection reads the embedder output"
            )

    @property
    def model_patch_size(self) -> int:
        return self.patch_size * self.pooling_kernel_size

    @property
    def patch_dim(self) -> int:
        """Raw pixel values per merged patch (48*48*3 = 6912 for the 12B)."""
        return self.model_patch_size**2 * 3

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VisionConfig:
        if not isinstance(d, dict):
            raise ConfigError("config.json: `vision_config` must be a mapping")
        model_type = d.get("model_type", "gemma4_unified_vision")
        if model_type != "gemma4_unified_vision":
            raise ConfigError(f"config.json: `vision_config.model_type` is {model_type!r}")
        names = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        mps = d.get("model_patch_size")
        if mps is not None and mps != cfg.model_patch_size:
            raise ConfigError(
                "config.json: `vision_config.model_patch_size` must equal patch_size * "
                f"pooling_kernel_size ({cfg.model_patch_size}), got {mps}"
            )
        return cfg


@dataclass
class AudioConfig:
    """The audio frame embedder (`Gemma4UnifiedAudioConfig`): raw 640-sample frames, no encoder."""

    audio_embed_dim: int = 640
    rms_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        self.audio_embed_dim = _int(self.audio_embed_dim, "audio_config.audio_embed_dim", 1)

    @property
    def samples_per_token(self) -> int:
        return self.audio_embed_dim

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioConfig:
        if not isinstance(d, dict):
            raise ConfigError("config.json: `audio_config` must be a mapping")
        model_type = d.get("model_type", "gemma4_unified_audio")
        if model_type != "gemma4_unified_audio":
            raise ConfigError(f"config.json: `audio_config.model_type` is {model_type!r}")
        dim = d.get("audio_embed_dim")
        for alias in ("hidden_size", "output_proj_dims", "audio_samples_per_token"):
            if d.get(alias) is not None:
                if dim is not None and d[alias] != dim:
                    raise ConfigError(
                        f"config.json: `audio_config.{alias}` ({d[alias]}) disagrees with "
                        f"`audio_config.audio_embed_dim` ({dim})"
                    )
                dim = d[alias]
        return cls(
            audio_embed_dim=640 if dim is None else dim, rms_norm_eps=d.get("rms_norm_eps", 1e-6)
        )


@dataclass
class ModelConfig:
    """The composite `gemma4_unified` config."""

    text_config: TextConfig
    vision_config: VisionConfig | None = None
    audio_config: AudioConfig | None = None
    model_type: str = MODEL_TYPE
    boi_token_id: int | None = None
    eoi_token_id: int | None = None
    image_token_id: int | None = None
    video_token_id: int | None = None
    boa_token_id: int | None = None
    eoa_token_id: int | None = None  # `eoa_token_index` in config.json
    audio_token_id: int | None = None
    tie_word_embeddings: bool = True
    quantization: dict[str, Any] | None = None  # MLX-quantized checkpoints (mlx-lm layout)
    eos_token_id: int | list[int] | None = None

    @property
    def eos_token_ids(self) -> list[int]:
        """The config's EOS ids (the generation config may add more)."""
        eos = self.eos_token_id if self.eos_token_id is not None else self.text_config.eos_token_id
        if eos is None:
            return []
        return [int(e) for e in (eos if isinstance(eos, list) else [eos])]

    @classmethod
    def from_dict(cls, d: dict[str, Any], **text_overrides: Any) -> ModelConfig:
        """Parse a config.json dict; `text_overrides` set TextConfig fields (e.g. vision_overlay_mode)."""
        if not isinstance(d, dict):
            raise ConfigError("config.json: top level must be a mapping")
        model_type = d.get("model_type")
        if model_type != MODEL_TYPE:
            raise ConfigError(
                f"config.json: `model_type` is {model_type!r}, expected {MODEL_TYPE!r} "
                "(Gemma 4 unified)"
            )
        text = TextConfig.from_dict(_require(d, "text_config", ""), **text_overrides)
        if text.num_kv_shared_layers >= text.num_hidden_layers:
            raise ConfigError(
                f"config.json: `text_config.num_kv_shared_layers` ({text.num_kv_shared_layers}) "
                f"must be smaller than `text_config.num_hidden_layers` ({text.num_hidden_layers})"
            )
        vision = VisionConfig.from_dict(d["vision_config"]) if d.get("vision_config") else None
        audio = AudioConfig.from_dict(d["audio_config"]) if d.get("audio_config") else None

        ids: dict[str, int | None] = {}
        eoa = d.get("eoa_token_index", d.get("eoa_token_id"))
        wanted = {
            "boi_token_id": vision is not None,
            "eoi_token_id": vision is not None,
            "image_token_id": vision is not None,
            "video_token_id": vision is not None,
            "boa_token_id": audio is not None,
            "audio_token_id": audio is not None,
        }
        for key, required in wanted.items():
            if required:
                ids[key] = _int(_require(d, key, ""), key)
            else:
                ids[key] = d.get(key)
        if audio is not None and eoa is None:
            raise ConfigError("config.json: missing required field `eoa_token_index`")
        tie = d.get("tie_word_embeddings", text.tie_word_embeddings)
        return cls(
            text_config=text,
            vision_config=vision,
            audio_config=audio,
            eoa_token_id=eoa,
            tie_word_embeddings=bool(tie),
            quantization=d.get("quantization") or d.get("quantization_config"),
            eos_token_id=d.get("eos_token_id"),
            **ids,
        )


def load_config(folder: str | Path, **text_overrides: Any) -> ModelConfig:
    """Read `folder/config.json` into a `ModelConfig` (ConfigError if absent or invalid)."""
    path = Path(folder) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found (a checkpoint folder needs config.json)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return ModelConfig.from_dict(raw, **text_overrides)


REFERENCE_CONFIG = (
    Path(__file__).resolve().parent / "reference_configs" / "gemma-4-12B-it.config.json"
)
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def read_checkpoint_config(folder: str | Path | None) -> tuple[ModelConfig, int, str]:
    """(config, float bytes per element, description) of a checkpoint folder or the 12B reference."""
    path = REFERENCE_CONFIG if folder is None else Path(folder) / "config.json"
    if folder is not None and not Path(folder).is_dir():
        raise ConfigError(f"{folder}: no such model folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (a checkpoint folder needs config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    dtype = raw.get("dtype") or raw.get("torch_dtype") or raw.get("text_config", {}).get("dtype")
    what = "Gemma 4 12B reference config (reconstructed)" if folder is None else str(folder)
    return ModelConfig.from_dict(raw), _DTYPE_BYTES.get(str(dtype), 2), what
