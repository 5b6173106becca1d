"""Load a Gemma 4 unified checkpoint folder into the MLX model, lazily, quantizing on the way if asked.

Accepts the Hugging Face layout (config.json, `model.safetensors` or sharded
`model-0000X-of-0000N.safetensors` with `model.safetensors.index.json`) in two forms:

- original float weights (bf16 for the real 12B, float32 for test checkpoints). They stay
  in the checkpoint's dtype unless `dtype=` casts them, or `bits=4|8` quantizes them on
  load, one module at a time: each weight is read from disk, quantized, evaluated, and its
  float source dropped before the next is touched, so peak memory stays near the final
  quantized size;
- MLX-quantized checkpoints (`quantization` in config.json, `.scales`/`.biases` tensors,
  as mlx-lm, mlx-vlm and `gemma-desk convert` write them), loaded as they are: exactly
  the modules with `.scales` become quantized, their bits/group size read from the
  tensors' shapes (which also honours per-layer overrides).

The same path loads the multi-token-prediction drafter (`gemma4_unified_assistant`, see
`gemma4_assistant.py`): `load_drafter(path)`, original weights or MLX conversions alike.

Weights are read lazily by `mx.load`: a tensor is read from disk when first evaluated.
Every problem with the folder raises `CheckpointError` (a ValueError) with one message
that names the file or the config field.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from .config import ConfigError, ModelConfig
from .errors import CheckpointError
from .gemma4_assistant import MODEL_TYPE as ASSISTANT_MODEL_TYPE
from .gemma4_assistant import AssistantConfig
from .gemma4_assistant import Model as AssistantModel
from .gemma4_unified import Model
from .quantization import (
    QUANTIZATION_MODE,
    QuantizationRecipe,
    infer_params,
    quantizable_modules,
    quantize_modules,
    quantize_weight,
)

INDEX_FILE = "model.safetensors.index.json"
_MAX_HEADER_BYTES = 100 << 20
_DTYPES = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}


@dataclass(frozen=True)
class TensorLocation:
    """Where a tensor's bytes sit in a safetensors file (for streaming it in row blocks)."""

    path: Path
    offset: int  # absolute byte offset of the first element
    dtype: str  # safetensors dtype code: "BF16", "F16", "F32", ...
    shape: tuple[int, ...]


@dataclass
class LoadedCheckpoint:
    """A loaded model and what `gemma-desk convert` needs to write it back."""

    model: Model | AssistantModel
    folder: Path
    raw_config: dict[str, Any]
    quantization: dict[str, Any] | None  # config.json `quantization` entry of the loaded model
    files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- files


def read_config(
    folder: Path, **overrides: Any
) -> tuple[dict[str, Any], ModelConfig | AssistantConfig]:
    """config.json as a dict and as a `ModelConfig` (with text-config `overrides`), or an
    `AssistantConfig` for a drafter checkpoint; CheckpointError naming the field if bad."""
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a checkpoint folder needs config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    try:
        if isinstance(raw, dict) and raw.get("model_type") == ASSISTANT_MODEL_TYPE:
            if overrides:
                raise ConfigError(f"options {sorted(overrides)} do not apply to a drafter")
            config: ModelConfig | AssistantConfig = AssistantConfig.from_dict(raw)
        else:
            config = ModelConfig.from_dict(raw, **overrides)
    except ConfigError as exc:
        message = str(exc).removeprefix("config.json: ")
        raise CheckpointError(f"{path}: {message}") from None
    return raw, config


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint, from the index if there is one."""
    index_path = folder / INDEX_FILE
    if index_path.exists():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            weight_map = index["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index_path}: not a valid safetensors index ({exc})") from None
        files = [folder / name for name in dict.fromkeys(weight_map.values())]
        for path in files:
            if not path.is_file():
                listed = sum(1 for f in weight_map.values() if folder / f == path)
                raise CheckpointError(
                    f"{path}: missing shard ({listed} tensors are listed for it in {INDEX_FILE}); "
                    "the download is incomplete"
                )
        return files
    files = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no *.safetensors weight files")
    return files


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, after checking the file holds all it describes.

    `__data_start__` is added: the byte offset the tensors' `data_offsets` count from."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER_BYTES):
            raise CheckpointError(
                f"{path}: truncated or corrupt safetensors file (header of {n} bytes in a "
                f"{size}-byte file)"
            )
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise CheckpointError(
                f"{path}: corrupt safetensors header entry for `{name}`"
            ) from None
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path}: truncated safetensors file: {size} bytes on disk, its header describes "
            f"{8 + n + end} (re-download this file)"
        )
    header["__data_start__"] = 8 + n
    return header


def read_weights(
    folder: Path, files: list[Path]
) -> tuple[dict[str, mx.array], dict[str, Path], dict[str, TensorLocation]]:
    """All tensors, lazily (`mx.load` reads nothing until evaluated), the file of each, and
    where each one's bytes are."""
    index_path = folder / INDEX_FILE
    index_map: dict[str, str] | None = None
    if index_path.exists():
        index_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
    weights: dict[str, mx.array] = {}
    origin: dict[str, Path] = {}
    locations: dict[str, TensorLocation] = {}
    for path in files:
        header = safetensors_header(path)
        data_start = header.pop("__data_start__")
        names = [k for k in header if k != "__metadata__"]
        try:
            arrays = mx.load(str(path))
        except (RuntimeError, ValueError, OSError) as exc:
            raise CheckpointError(f"{path}: cannot read safetensors ({exc})") from None
        for name in names:
            if name in weights:
                raise CheckpointError(f"{path}: tensor `{name}` also appears in {origin[name]}")
            weights[name] = arrays[name]
            origin[name] = path
            info = header[name]
            locations[name] = TensorLocation(
                path, data_start + int(info["data_offsets"][0]), info["dtype"], tuple(info["shape"])
            )
    if index_map is not None:
        for name, file_name in index_map.items():
            if name not in weights:
                raise CheckpointError(
                    f"{folder / file_name}: tensor `{name}` is listed in {INDEX_FILE} but not in the file"
                )
    return weights, origin, locations


# Unused tensors some conversions carry over from the Gemma 3n layout (vLLM skips them too):
# the unified model's multimodal embedders have only their projection.
VESTIGIAL_PREFIXES = ("embed_vision.embedding.", "embed_audio.embedding.")
log = logging.getLogger(__name__)


def drop_vestigial(weights: dict[str, mx.array], folder: Path) -> dict[str, mx.array]:
    """`weights` (sanitized names) without the vestigial multimodal tensors; one log line."""
    skipped = sorted(k for k in weights if k.startswith(VESTIGIAL_PREFIXES))
    if skipped:
        log.info(
            "%s: skipping %d unused tensor(s) of an older layout (%s)",
            folder,
            len(skipped),
            ", ".join(skipped),
        )
    return {k: v for k, v in weights.items() if k not in skipped}


# --------------------------------------------------------------------------- checks


def _check_names_and_shapes(
    expected: dict[str, mx.array],
    weights: dict[str, mx.array],
    source: dict[str, tuple[str, Path]],
    folder: Path,
) -> None:
    """Every expected tensor present with its shape, nothing unexpected."""
    unexpected = [k for k in weights if k not in expected]
    if unexpected:
        name, path = source.get(unexpected[0], (unexpected[0], folder))
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(
            f"{path}: unexpected tensor `{name}`{more}: config.json describes no such weight"
        )
    missing = [k for k in expected if k not in weights]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(
            f"{folder}: missing tensor for `{missing[0]}`{more} "
            f"(shape {tuple(expected[missing[0]].shape)} expected from config.json)"
        )
    for key, value in weights.items():
        want = tuple(expected[key].shape)
        if tuple(value.shape) != want:
            name, path = source.get(key, (key, folder))
            raise CheckpointError(
                f"{path}: tensor `{name}` has shape {tuple(value.shape)}, expected {want} "
                "from config.json"
            )


def _resolve_dtype(dtype: Any) -> mx.Dtype | None:
    if dtype is None or isinstance(dtype, mx.Dtype):
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be an mx.Dtype or one of {sorted(_DTYPES)}, got {dtype!r}")


# --------------------------------------------------------------------------- loading


def load_checkpoint(
    path: str | Path,
    *,
    bits: int | None = None,
    group_size: int = 64,
    embedding_bits: int | None = None,
    dtype: Any = None,
    lazy: bool = True,
    **config_overrides: Any,
) -> LoadedCheckpoint:
    """Like `load_model`, also returning the config and the quantization it ended up with."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder")
    dtype = _resolve_dtype(dtype)
    raw, config = read_config(folder, **config_overrides)
    files = weight_files(folder)
    weights, origin, locations = read_weights(folder, files)

    model = AssistantModel(config) if isinstance(config, AssistantConfig) else Model(config)
    by_id = {id(v): (k, origin[k]) for k, v in weights.items()}
    weights = drop_vestigial(model.sanitize(weights), folder)
    source = {k: by_id.get(id(v), (k, folder)) for k, v in weights.items()}
    # Tensors sanitize passed through untouched can be streamed from their file.
    on_disk = {k: locations[source[k][0]] for k in weights if source[k][0] in locations}
    on_disk = {k: loc for k, loc in on_disk.items() if id(weights[k]) in by_id}

    pre_quantized = any(k.endswith(".scales") for k in weights)
    if pre_quantized:
        stored_bits = (raw.get("quantization") or raw.get("quantization_config") or {}).get("bits")
        if (bits is not None and bits != stored_bits) or embedding_bits is not None:
            raise ValueError(
                f"{folder} is already quantized ({stored_bits} bits); load it without bits= "
                "(re-quantizing a quantized checkpoint loses precision: convert from the "
                "original weights instead)"
            )
        quantization = _quantize_like_checkpoint(model, weights, source, raw, folder)
        _check_names_and_shapes(dict(tree_flatten(model.parameters())), weights, source, folder)
        if dtype is not None:
            weights = {k: _cast(v, dtype) for k, v in weights.items()}
    else:
        _check_names_and_shapes(dict(tree_flatten(model.parameters())), weights, source, folder)
        if dtype is not None:
            weights = {k: _cast(v, dtype) for k, v in weights.items()}
        quantization = None
        if bits is not None:
            recipe = QuantizationRecipe(bits, group_size, embedding_bits)
            quantization = quantize_layer_by_layer(model, weights, recipe, on_disk, dtype)

    model.eval()
    try:
        model.load_weights(list(weights.items()), strict=True)
    except ValueError as exc:  # our checks above should make this unreachable
        raise CheckpointError(f"{folder}: {exc}") from None
    del weights
    if not lazy:
        mx.eval(model.parameters())
    return LoadedCheckpoint(model, folder, raw, quantization, files)


def load_model(
    path: str | Path,
    *,
    bits: int | None = None,
    group_size: int = 64,
    embedding_bits: int | None = None,
    dtype: Any = None,
    lazy: bool = True,
    **config_overrides: Any,
) -> Model:
    """A checkpoint folder -> the MLX `Model`.

    - `bits` (4 or 8; also 2, 3, 5, 6): quantize float weights on load, module by module,
      uniformly in groups of `group_size` (embedding/LM head included);
      `embedding_bits` gives the embedding its own width (mixed precision, opt-in).
      Pre-quantized checkpoints load as stored and refuse `bits`.
    - `dtype`: cast float weights (e.g. "bfloat16"); None keeps the checkpoint's dtype.
    - `lazy`: leave weights unread until first use (True) or read them all now.
    - `config_overrides`: text-config fields not in config.json (`vision_overlay_mode`).

    Raises `CheckpointError` naming the file or config field when the folder is bad.
    """
    loaded = load_checkpoint(
        path,
        bits=bits,
        group_size=group_size,
        embedding_bits=embedding_bits,
        dtype=dtype,
        lazy=lazy,
        **config_overrides,
    )
    if not isinstance(loaded.model, Model):
        raise CheckpointError(
            f"{loaded.folder}: this is a drafter (`{ASSISTANT_MODEL_TYPE}`) checkpoint, not a "
            "model to chat with; load it with `load_drafter` beside its target model"
        )
    return loaded.model


def load_drafter(
    path: str | Path,
    *,
    bits: int | None = None,
    group_size: int = 64,
    dtype: Any = None,
    lazy: bool = True,
) -> AssistantModel:
    """A drafter (`gemma4_unified_assistant`) checkpoint folder -> its MLX model.

    Same layouts and options as `load_model`: original float weights (optionally cast with
    `dtype` or quantized on load with `bits`) or an MLX-quantized conversion, loaded as stored.
    Raises `CheckpointError` naming the file or field when the folder is bad or is not a drafter.
    """
    loaded = load_checkpoint(path, bits=bits, group_size=group_size, dtype=dtype, lazy=lazy)
    if not isinstance(loaded.model, AssistantModel):
        raise CheckpointError(
            f"{loaded.folder}: `model_type` is {loaded.raw_config.get('model_type')!r}, not a "
            f"drafter (`{ASSISTANT_MODEL_TYPE}`)"
        )
    return loaded.model


def _cast(value: mx.array, dtype: mx.Dtype) -> mx.array:
    return value.astype(dtype) if mx.issubdtype(value.dtype, mx.floating) else value


def quantize_layer_by_layer(
    model: nn.Module,
    weights: dict[str, mx.array],
    recipe: QuantizationRecipe,
    on_disk: dict[str, TensorLocation] | None = None,
    dtype: mx.Dtype | None = None,
) -> dict[str, Any]:
    """Quantize the float `weights` in place, one module at a time; swap the model's modules.

    Largest tensors first (the embedding), while the least is resident. A tensor whose bytes
    are in a file (`on_disk`) is streamed from it in row blocks, so not even one whole float
    tensor is resident; others are evaluated and quantized in row blocks. Each step's
    result is evaluated and its float source dropped before the next module.
    Returns the config.json `quantization` entry.
    """
    on_disk = on_disk or {}
    plan = recipe.plan(model)
    order = sorted(plan, key=lambda p: -weights[f"{p}.weight"].size)
    for path in order:
        params = plan[path]
        name = f"{path}.weight"
        source = weights.pop(name)
        location = on_disk.get(name)
        if location is not None and location.dtype in _STREAMABLE:
            del source
            q, s, b = quantize_from_file(location, params["bits"], params["group_size"], dtype)
        else:
            q, s, b = quantize_weight(source, params["bits"], params["group_size"])
            del source
        weights[name], weights[f"{path}.scales"], weights[f"{path}.biases"] = q, s, b
        mx.clear_cache()
    quantize_modules(model, plan)
    return recipe.config_entry(plan)


_STREAMABLE = {
    "BF16": (np.uint16, mx.bfloat16),
    "F16": (np.float16, None),
    "F32": (np.float32, None),
}


def quantize_from_file(
    location: TensorLocation,
    bits: int,
    group_size: int,
    dtype: mx.Dtype | None = None,
    block_bytes: int = 32 << 20,
) -> tuple[mx.array, mx.array, mx.array]:
    """Quantize a 2-D tensor read from its file `block_bytes` of rows at a time.

    Rows quantize independently, so the result equals one `mx.quantize` of the whole tensor.
    """
    np_dtype, view = _STREAMABLE[location.dtype]
    rows, cols = location.shape
    itemsize = np.dtype(np_dtype).itemsize
    step = max(1, block_bytes // (cols * itemsize))
    parts: list[tuple[mx.array, mx.array, mx.array]] = []
    with open(location.path, "rb") as f:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            f.seek(location.offset + start * cols * itemsize)
            buffer = np.empty(n * cols, dtype=np_dtype)
            if f.readinto(memoryview(buffer).cast("B")) != buffer.nbytes:
                raise CheckpointError(f"{location.path}: file ended inside a tensor")
            block = mx.array(buffer)
            del buffer
            if view is not None:
                block = block.view(view)
            block = block.reshape(n, cols)
            if dtype is not None:
                block = block.astype(dtype)
            q, s, b = mx.quantize(block, group_size=group_size, bits=bits)
            mx.eval(q, s, b)
            del block
            parts.append((q, s, b))
    if len(parts) == 1:
        return parts[0]
    out = tuple(mx.concatenate([p[i] for p in parts], axis=0) for i in range(3))
    del parts
    mx.eval(*out)
    return out  # type: ignore[return-value]


def _quantize_like_checkpoint(
    model: nn.Module,
    weights: dict[str, mx.array],
    source: dict[str, tuple[str, Path]],
    raw: dict[str, Any],
    folder: Path,
) -> dict[str, Any]:
    """Swap in quantized modules exactly where the checkpoint has `.scales`; bits from shapes."""
    stored = raw.get("quantization") or raw.get("quantization_config") or {}
    mode = stored.get("mode", QUANTIZATION_MODE)
    params: dict[str, dict[str, Any]] = {}
    for path, module in quantizable_modules(model):
        scales = weights.get(f"{path}.scales")
        if scales is None:
            continue
        packed = weights.get(f"{path}.weight")
        if packed is None:
            raise CheckpointError(f"{folder}: `{path}.scales` has no `{path}.weight` beside it")
        try:
            inferred = infer_params(path, module["weight"].shape[-1], packed.shape, scales.shape)
        except ValueError:
            name, file = source.get(f"{path}.weight", (f"{path}.weight", folder))
            raise CheckpointError(
                f"{file}: quantized tensor `{name}` has shape {tuple(packed.shape)} with scales "
                f"{tuple(scales.shape)}, which do not fit the {module['weight'].shape[-1]} inputs "
                "config.json describes"
            ) from None
        params[path] = {**inferred, "mode": mode}
    quantize_modules(model, params)
    entry: dict[str, Any] = {
        "group_size": int(stored.get("group_size", 64)),
        "bits": int(stored.get("bits", 4)),
        "mode": mode,
    }
    for path, p in params.items():
        if p["bits"] != entry["bits"] or p["group_size"] != entry["group_size"]:
            entry[path] = dict(p)
    return entry
