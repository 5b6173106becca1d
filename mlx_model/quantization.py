"""Which modules of the Gemma 4 unified model get quantized, at what precision, and what it costs.

The default is uniform: every module MLX can quantize (`nn.Linear` and `nn.Embedding`,
the tied embedding/LM head included) at 4 bits in groups of 64, "affine" mode (a scale
and a bias per group, in the weights' float dtype). Norms, `pos_embedding` and
`layer_scalar` are plain parameters of other modules and are never quantized. A module
whose input width is not a multiple of the group size stays in floating point.

Mixed precision (for example a 6-bit embedding) is an explicit option
(`QuantizationRecipe(embedding_bits=6)`), never a silent default. The recipe also writes
and reads the `quantization` entry of an MLX checkpoint's config.json in the layout
mlx-lm and mlx-vlm use: `{"group_size": 64, "bits": 4, "mode": "affine", <path>: {...}}`
where a `<path>` entry overrides the default for one module (or is `false`: not quantized).

`quantize_modules` swaps the modules in (`nn.quantize`) as this package's `QuantizedLinear`
and `QuantizedEmbedding`: the same parameters and layout as MLX's, but on the CPU backend a
bf16/fp16 input goes through MLX's float32 quantized-matmul kernel (see `quantized_matmul`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

DEFAULT_BITS = 4
DEFAULT_GROUP_SIZE = 64
SUPPORTED_BITS = (2, 3, 4, 5, 6, 8)
SUPPORTED_GROUP_SIZES = (32, 64, 128)
QUANTIZATION_MODE = "affine"
_RESERVED_KEYS = ("group_size", "bits", "mode")

Predicate = Callable[[str, nn.Module], bool | dict[str, Any]]


def quantized_matmul(x: mx.array, module: nn.Module) -> mx.array:
    """`x @ dequantized(module.weight).T` for a quantized Linear/Embedding, as MLX computes it,
    except on the CPU backend with a bf16/fp16 input: there the product runs in float32 and
    is rounded back to the input dtype.

    MLX's CPU quantized matmul has a vectorised float32 kernel; bf16/fp16 inputs take a
    scalar path that is about 10x slower and accumulates in the low-precision type (relative
    error ~3.5e-2 against exact math for a 1024-wide bf16 product, vs ~1.6e-3 = bf16 rounding
    for float32 accumulation). The GPU kernels accumulate in float32 already, so nothing
    changes there. Scales and biases stay as stored (no extra memory).
    """
    dtype = x.dtype
    upcast = dtype in (mx.bfloat16, mx.float16) and mx.default_device() == mx.cpu
    out = mx.quantized_matmul(
        x.astype(mx.float32) if upcast else x,
        module["weight"],
        scales=module["scales"],
        biases=module.get("biases"),
        transpose=True,
        group_size=module.group_size,
        bits=module.bits,
        mode=module.mode,
    )
    return out.astype(dtype) if upcast else out


class QuantizedLinear(nn.QuantizedLinear):
    """`nn.QuantizedLinear` (same parameters) computing through `quantized_matmul`."""

    def __call__(self, x: mx.array) -> mx.array:
        y = quantized_matmul(x, self)
        return y + self["bias"] if "bias" in self else y


class QuantizedEmbedding(nn.QuantizedEmbedding):
    """`nn.QuantizedEmbedding` (same parameters) whose tied-head `as_linear` computes through
    `quantized_matmul`."""

    def as_linear(self, x: mx.array) -> mx.array:
        return quantized_matmul(x, self)


_OWN_CLASSES = {nn.QuantizedLinear: QuantizedLinear, nn.QuantizedEmbedding: QuantizedEmbedding}


def quantize_modules(model: nn.Module, params: dict[str, dict[str, Any]]) -> None:
    """Quantize (in place) exactly the modules named in `params` (path -> `to_quantized`
    arguments), as this package's `QuantizedLinear`/`QuantizedEmbedding`."""
    nn.quantize(model, class_predicate=lambda p, m: dict(params[p]) if p in params else False)
    for _, module in model.named_modules():
        own = _OWN_CLASSES.get(type(module))
        if own is not None:
            module.__class__ = own  # same attributes and parameters, own __call__/as_linear


def check_bits(bits: int, what: str = "bits") -> int:
    """`bits` if MLX's affine quantization supports it, else a ValueError naming `what`."""
    if isinstance(bits, bool) or bits not in SUPPORTED_BITS:
        raise ValueError(f"{what} must be one of {SUPPORTED_BITS}, got {bits!r}")
    return int(bits)


def check_group_size(group_size: int) -> int:
    if isinstance(group_size, bool) or group_size not in SUPPORTED_GROUP_SIZES:
        raise ValueError(f"group_size must be one of {SUPPORTED_GROUP_SIZES}, got {group_size!r}")
    return int(group_size)


def is_quantizable(module: nn.Module, group_size: int) -> bool:
    """True for a floating-point Linear/Embedding whose input width splits into groups."""
    if not hasattr(module, "to_quantized") or "weight" not in module:
        return False
    weight = module["weight"]
    return weight.ndim == 2 and weight.shape[-1] % group_size == 0


def quantizable_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(path, module) of every leaf module that defines `to_quantized`, in model order."""
    for path, module in model.named_modules():
        if hasattr(module, "to_quantized") and "weight" in module:
            yield path, module


@dataclass(frozen=True)
class QuantizationRecipe:
    """How to quantize a floating-point model: uniform `bits`/`group_size`, optional overrides.

    `embedding_bits` (mixed precision, opt-in) sets a different width for the token
    embedding, which is also the tied LM head.
    """

    bits: int = DEFAULT_BITS
    group_size: int = DEFAULT_GROUP_SIZE
    embedding_bits: int | None = None

    def __post_init__(self) -> None:
        check_bits(self.bits)
        check_group_size(self.group_size)
        if self.embedding_bits is not None:
            check_bits(self.embedding_bits, "embedding_bits")

    def params_for(self, path: str, module: nn.Module) -> dict[str, Any] | None:
        """The `to_quantized` arguments for one module, or None to keep it in floating point."""
        if not is_quantizable(module, self.group_size):
            return None
        bits = self.bits
        if self.embedding_bits is not None and isinstance(module, nn.Embedding):
            bits = self.embedding_bits
        return {"group_size": self.group_size, "bits": bits, "mode": QUANTIZATION_MODE}

    def predicate(self) -> Predicate:
        """A `class_predicate` for `nn.quantize`."""

        def predicate(path: str, module: nn.Module) -> bool | dict[str, Any]:
            params = self.params_for(path, module)
            return False if params is None else dict(params)

        return predicate

    def plan(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        """path -> `to_quantized` arguments of every module this recipe quantizes in `model`."""
        plan: dict[str, dict[str, Any]] = {}
        for path, module in quantizable_modules(model):
            params = self.params_for(path, module)
            if params is not None:
                plan[path] = params
        return plan

    def config_entry(self, plan: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The config.json `quantization` entry for a `plan` made by this recipe.

        Modules that stay in floating point need no entry: loaders quantize exactly the
        modules whose `.scales` are in the checkpoint. Modules that differ from the default
        (mixed precision) get a per-path entry.
        """
        entry: dict[str, Any] = {
            "group_size": self.group_size,
            "bits": self.bits,
            "mode": QUANTIZATION_MODE,
        }
        for path, params in plan.items():
            if params["bits"] != self.bits or params["group_size"] != self.group_size:
                entry[path] = dict(params)
        return entry


def params_from_config(quantization: dict[str, Any], path: str) -> dict[str, Any] | None:
    """Per-module parameters of a pre-quantized checkpoint's `quantization` entry.

    Returns the module's override if the entry names its path (None when it is `false`),
    otherwise the checkpoint-wide default.
    """
    default = {
        "group_size": int(quantization.get("group_size", DEFAULT_GROUP_SIZE)),
        "bits": int(quantization.get("bits", DEFAULT_BITS)),
        "mode": quantization.get("mode", QUANTIZATION_MODE),
    }
    override = None
    for alias in module_path_aliases(path):
        if alias in quantization and alias not in _RESERVED_KEYS:
            override = quantization[alias]
            break
    if override is None:
        return default
    if override is False:
        return None
    if override is True:
        return default
    if isinstance(override, dict):
        merged = dict(default)
        merged.update({k: override[k] for k in ("group_size", "bits", "mode") if k in override})
        return merged
    raise ValueError(f"quantization.{path} must be a mapping or a boolean, got {override!r}")


def module_path_aliases(path: str) -> list[str]:
    """`path` and its spellings in other layouts (mlx-vlm nests the decoder as
    `language_model.model.*`), so a `quantization` entry written by either tool is found."""
    aliases = [path]
    if path.startswith("language_model.") and not path.startswith("language_model.model."):
        aliases.append("language_model.model." + path[len("language_model.") :])
    return aliases


def infer_params(
    path: str, in_dims: int, weight_shape: tuple[int, ...], scales_shape: tuple[int, ...]
) -> dict[str, int]:
    """bits and group_size of a packed affine weight, recovered from the tensors' shapes."""
    packed, groups = weight_shape[-1], scales_shape[-1]
    if groups == 0 or in_dims % groups or (packed * 32) % in_dims:
        raise ValueError(
            f"{path}: packed shapes {weight_shape}/{scales_shape} do not fit {in_dims} inputs"
        )
    return {"group_size": in_dims // groups, "bits": packed * 32 // in_dims}


def quantized_tensor_shapes(
    shape: tuple[int, ...], bits: int, group_size: int
) -> dict[str, tuple[int, ...]]:
    """Shapes of `weight` (uint32), `scales` and `biases` for a [out, in] weight."""
    *lead, in_dims = shape
    return {
        "weight": (*lead, in_dims * bits // 32),
        "scales": (*lead, in_dims // group_size),
        "biases": (*lead, in_dims // group_size),
    }


def quantized_nbytes(
    shape: tuple[int, ...], bits: int, group_size: int, scale_bytes: int = 2
) -> int:
    """Bytes of a [out, in] weight after affine quantization, scales and biases included."""
    n = 1
    for d in shape:
        n *= d
    groups = n // group_size
    return n * bits // 8 + 2 * groups * scale_bytes


def quantize_weight(
    weight: mx.array, bits: int, group_size: int, max_chunk_bytes: int = 256 << 20
) -> tuple[mx.array, mx.array, mx.array]:
    """`mx.quantize` evaluated row block by row block, so a huge tensor never needs a float32 copy.

    Rows are quantized independently (groups run along the last axis), so the blocks
    concatenate to exactly what one `mx.quantize` call returns.
    """
    rows = weight.shape[0]
    row_bytes = max(1, weight.size // max(rows, 1)) * 8  # float32 temporaries of one row
    step = max(1, min(rows, max_chunk_bytes // row_bytes))
    if step >= rows:
        q, s, b = mx.quantize(weight, group_size=group_size, bits=bits)
        mx.eval(q, s, b)
        return q, s, b
    parts: list[tuple[mx.array, mx.array, mx.array]] = []
    for start in range(0, rows, step):
        q, s, b = mx.quantize(weight[start : start + step], group_size=group_size, bits=bits)
        mx.eval(q, s, b)
        parts.append((q, s, b))
    out = tuple(mx.concatenate([p[i] for p in parts], axis=0) for i in range(3))
    del parts
    mx.eval(*out)
    return out  # type: ignore[return-value]


def bits_per_weight(model: nn.Module) -> float:
    """Average stored bits per parameter of a (partly) quantized model, overhead included."""
    from mlx.utils import tree_flatten

    total_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    n_params = 0
    for _, module in model.named_modules():
        for name, value in module.items():
            if not isinstance(value, mx.array) or name in ("scales", "biases"):
                continue
            if name == "weight" and isinstance(module, nn.QuantizedLinear | nn.QuantizedEmbedding):
                n_params += value.size * 32 // module.bits
            else:
                n_params += value.size
    return 8 * total_bytes / max(n_params, 1)
