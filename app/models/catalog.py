"""The model catalog: which checkpoints Gemma Desk offers, how each is loaded, and its size.

One built-in entry, Gemma 4 12B instruction-tuned (`google/gemma-4-12B-it`), downloaded in
its original bf16 form and quantized to 4 bits while loading, with its assistant
(`google/gemma-4-12B-it-assistant`: the drafter that makes answers faster through
speculative decoding; `assistant_entry`). A user may point to a
pre-quantized MLX conversion (a hub repo or a folder) instead; `entry_for_repo` reads its
`config.json` to find the stored precision. Sizes are never hard-coded: they come from the
checkpoint's safetensors headers (local folder) or the hub's safetensors metadata, and the
memory plan (`mlx_model.memory_plan`) decides what fits before anything is loaded.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlx_model.hub import DRAFTER_SUFFIX

SUPPORTED_MODEL_TYPES = ("gemma4_unified",)
DRAFTER_MODEL_TYPES = ("gemma4_unified_assistant",)  # speculative drafters: no chat on their own
DEFAULT_LOAD_BITS = 4
DEFAULT_GROUP_SIZE = 64
# Files a checkpoint needs: weights, configs, tokenizer, chat template, license/readme.
DEFAULT_ALLOW_PATTERNS = (
    "*.json",
    "*.safetensors",
    "*.model",
    "*.jinja",
    "*.txt",
    "*.md",
    "LICENSE*",
)

_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4,
    "F16": 2, "BF16": 2, "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip


@dataclass(frozen=True)
class CatalogEntry:
    """A model the app can download and load.

    stored_bits: None for original (bf16) weights, else the bits of an MLX-quantized copy.
    load_bits: quantize original weights to this many bits while loading (None = as stored).
    """

    key: str
    name: str
    repo_id: str
    revision: str = "main"
    stored_bits: int | None = None
    load_bits: int | None = DEFAULT_LOAD_BITS
    group_size: int = DEFAULT_GROUP_SIZE
    description: str = ""
    gated: bool = False  # the hub asks the user to accept a license first
    allow_patterns: tuple[str, ...] = field(default=DEFAULT_ALLOW_PATTERNS)
    assistant_repo: str = ""  # the model's speculative drafter, downloaded with it
    model_types: tuple[str, ...] = SUPPORTED_MODEL_TYPES  # what a download must turn out to be

    @property
    def is_prequantized(self) -> bool:
        return self.stored_bits is not None

    @property
    def effective_bits(self) -> int | None:
        """Bits per weight once loaded (None = bf16)."""
        return self.stored_bits if self.is_prequantized else self.load_bits

    @property
    def folder_name(self) -> str:
        """Folder under the models directory: `owner--name` (one per repo)."""
        return self.repo_id.replace("/", "--")

    def with_load_bits(self, bits: int | None) -> CatalogEntry:
        """The same checkpoint loaded at another precision (4, 8, or None for bf16)."""
        return replace(self, load_bits=bits)


GEMMA_4_12B_IT = CatalogEntry(
    key="gemma-4-12b-it",
    name="Gemma 4 12B",
    repo_id="google/gemma-4-12B-it",
    stored_bits=None,
    load_bits=DEFAULT_LOAD_BITS,
    description=(
        "Google's multimodal Gemma 4 12B, instruction-tuned: text, images, audio and video. "
        "Downloaded in its original form and quantized to 4 bits as it loads."
    ),
    gated=True,
    assistant_repo="google/gemma-4-12B-it-assistant",
)


def assistant_entry(entry: CatalogEntry) -> CatalogEntry | None:
    """The download of `entry`'s drafter (loaded as stored, beside the model), or None."""
    if not entry.assistant_repo:
        return None
    return CatalogEntry(
        key=entry.assistant_repo.lower(),
        name=f"{entry.name} assistant",
        repo_id=entry.assistant_repo,
        revision=entry.revision,
        load_bits=None,
        description=f"The drafter that makes {entry.name}'s answers faster (the same answers).",
        gated=entry.gated,
        model_types=DRAFTER_MODEL_TYPES,
    )


def builtin_entries() -> list[CatalogEntry]:
    """The catalog shown in the model manager."""
    return [GEMMA_4_12B_IT]


def find_entry(key_or_repo: str) -> CatalogEntry | None:
    """A built-in entry by key or repo id (case-insensitive), or None."""
    wanted = key_or_repo.lower()
    for entry in builtin_entries():
        if wanted in (entry.key.lower(), entry.repo_id.lower()):
            return entry
    return None


def quantization_of(config: Mapping) -> tuple[int, int] | None:
    """(bits, group_size) of an MLX-quantized checkpoint's config.json, or None if unquantized."""
    for key in ("quantization", "quantization_config"):
        q = config.get(key)
        if isinstance(q, Mapping) and "bits" in q:
            return int(q["bits"]), int(q.get("group_size", DEFAULT_GROUP_SIZE))
    return None


def entry_for_repo(
    repo_id: str, config: Mapping | None = None, *, revision: str = "main"
) -> CatalogEntry:
    """A catalog entry for a repo the user typed (e.g. an MLX 4-bit or 8-bit conversion).

    `config` is the repo's config.json (fetch it with `models.download.fetch_config`); its
    `quantization` block says whether the weights are pre-quantized and at how many bits.
    """
    builtin = find_entry(repo_id)
    if builtin is not None and config is None:
        return builtin
    for known in builtin_entries():
        if known.assistant_repo.lower() == repo_id.lower():
            return replace(assistant_entry(known), revision=revision)
    drafter = (config or {}).get("model_type") in DRAFTER_MODEL_TYPES or (
        config is None and repo_id.endswith(DRAFTER_SUFFIX)
    )
    quant = quantization_of(config or {})
    bits, group = quant if quant else (None, DEFAULT_GROUP_SIZE)
    label = f"{bits}-bit MLX" if bits else "original weights"
    return CatalogEntry(
        key=repo_id.lower(),
        name=f"{repo_id.split('/')[-1]} ({label})",
        repo_id=repo_id,
        revision=revision,
        stored_bits=bits,
        load_bits=None if bits or drafter else DEFAULT_LOAD_BITS,
        group_size=group,
        description=f"User-chosen checkpoint {repo_id}.",
        model_types=DRAFTER_MODEL_TYPES if drafter else SUPPORTED_MODEL_TYPES,
    )


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class SizeEstimate:
    """How big a checkpoint is: on disk, and its weights at each precision once loaded."""

    parameters: int
    stored_bytes: int
    loaded_bytes: Mapping[int | None, int]  # bits (None = bf16) -> bytes of weights in memory

    def at(self, bits: int | None) -> int:
        return self.loaded_bytes[bits]


def quantized_bytes(parameters: int, bits: int | None, group_size: int = DEFAULT_GROUP_SIZE) -> int:
    """Bytes of `parameters` weights at `bits` (MLX affine: fp16 scale + bias per group)."""
    if bits is None:
        return parameters * 2
    per_group_overhead_bits = 2 * 16
    return math.ceil(parameters * (bits + per_group_overhead_bits / group_size) / 8)


def estimate_from_parameters(
    parameters: int, stored_bytes: int, group_size: int = DEFAULT_GROUP_SIZE
) -> SizeEstimate:
    """Sizes at bf16, 8-bit and 4-bit for a parameter count."""
    return SizeEstimate(
        parameters=parameters,
        stored_bytes=stored_bytes,
        loaded_bytes={b: quantized_bytes(parameters, b, group_size) for b in (None, 8, 4)},
    )


def read_safetensors_header(path: str | Path) -> dict:
    """The JSON header of a .safetensors file (tensor names, dtypes, shapes), without the data.

    Raises `ValueError` when the file is not safetensors or shorter than its header says
    (a truncated copy or an interrupted download).
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"only {size} bytes, not a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        if length > 100 * 1024 * 1024 or 8 + length > size:
            raise ValueError(f"header length {length} does not fit a {size}-byte file")
        header = json.loads(f.read(length))
    end = max(
        (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0
    )
    if 8 + length + end > size:
        raise ValueError(f"truncated: {size} bytes, the header describes {8 + length + end}")
    return header


def estimate_from_folder(folder: str | Path) -> SizeEstimate:
    """Count parameters from the safetensors headers of a checkpoint folder (no weights read).

    For an MLX-quantized folder the packed uint32 weights hold 32/bits values each; the
    scales/biases are not counted as parameters.
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    quant = quantization_of(config)
    parameters, stored = 0, 0
    for file in sorted(folder.glob("*.safetensors")):
        stored += file.stat().st_size
        for name, info in read_safetensors_header(file).items():
            if name == "__metadata__":
                continue
            count = math.prod(info["shape"])
            if name.endswith((".scales", ".biases")) and quant:
                continue
            if quant and info["dtype"] == "U32":
                count *= 32 // quant[0]
            parameters += count
    return estimate_from_parameters(parameters, stored, quant[1] if quant else DEFAULT_GROUP_SIZE)


def estimate_with_memory_plan(
    entry: CatalogEntry, folder: str | Path | None = None
) -> SizeEstimate:
    """Sizes from the config alone through `mlx_model.memory_plan` (nothing is materialized).

    `folder` is a downloaded checkpoint; without one, only the built-in Gemma 4 12B can be
    estimated (memory_plan ships its reference config). Raises `FileNotFoundError` otherwise.
    """
    from mlx_model import import_serialized

    mp = import_serialized("mlx_model.memory_plan")

    if folder is None and find_entry(entry.repo_id) is None:
        raise FileNotFoundError(f"Download or import {entry.repo_id} first to estimate its size.")
    config, dtype_bytes, _ = mp.read_checkpoint_config(folder)
    model = mp.instantiate_lazily(config)
    parameters = mp.parameter_count(model)
    loaded = {}
    for bits in (None, 8, 4):
        total, _ = mp.weights_nbytes(
            model, bits=bits, group_size=entry.group_size, dtype_bytes=dtype_bytes,
            quantization=config.quantization,
        )  # fmt: skip
        loaded[bits] = total
    if folder is not None:
        stored = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
    else:
        stored = loaded[None] if entry.stored_bits is None else loaded[entry.stored_bits]
    return SizeEstimate(parameters=parameters, stored_bytes=stored, loaded_bytes=loaded)


def memory_plan_for(
    entry: CatalogEntry,
    folder: str | Path | None,
    context_length: int,
    kv_bits: int | None = None,
    drafter: str | Path | None = None,
):
    """The `mlx_model.memory_plan.MemoryPlan` shown before loading (never raises for 'too big';
    check `plan.fits` and `memory_plan.propose_alternatives` for what would fit). `drafter`: the
    folder of the speculative drafter that would load beside it (counted too)."""
    from mlx_model import import_serialized

    mp = import_serialized("mlx_model.memory_plan")

    config, dtype_bytes, _ = mp.read_checkpoint_config(folder)
    bits = None if config.quantization else entry.load_bits
    extra = mp.drafter_nbytes(drafter, dtype_bytes=dtype_bytes) if drafter is not None else 0
    return mp.plan_memory(
        config, bits=bits, context_length=context_length, kv_bits=kv_bits,
        group_size=entry.group_size, dtype_bytes=dtype_bytes, raise_if_too_big=False,
        drafter_bytes=extra,
    )  # fmt: skip
