"""`gemma-desk convert SRC DST --bits 4|8`: write an MLX-quantized copy of a checkpoint folder.

The source (original float weights) is quantized layer by layer as `load_model(bits=...)`
does, then written in the layout mlx-lm and mlx-vlm use: config.json with a `quantization`
entry, `model.safetensors` (or `model-0000X-of-0000N.safetensors` past the shard size) plus
`model.safetensors.index.json`, tensor names in mlx-vlm's module layout
(`language_model.model.*`, `vision_embedder.*`, `embed_vision.*`, `embed_audio.*`), and every
tokenizer/chat-template/processor file copied. Loading the result gives the same model,
so its outputs are identical to quantizing on load.

The folder is written next to DST and renamed into place at the end, so an interrupted
conversion never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

from .loading import INDEX_FILE, CheckpointError, load_checkpoint

DEFAULT_SHARD_BYTES = 5 << 30
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def disk_name(name: str) -> str:
    """Our module path -> mlx-vlm's layout (which our loader also reads)."""
    if name.startswith("language_model."):
        return "language_model.model." + name[len("language_model.") :]
    return name


def make_shards(weights: dict[str, mx.array], max_bytes: int) -> list[dict[str, mx.array]]:
    """Consecutive groups of tensors of at most `max_bytes` (a bigger tensor gets its own)."""
    shards: list[dict[str, mx.array]] = []
    size = 0
    for name, value in weights.items():
        if not shards or (size + value.nbytes > max_bytes and shards[-1]):
            shards.append({})
            size = 0
        shards[-1][name] = value
        size += value.nbytes
    return shards


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    bits: int = 4,
    group_size: int = 64,
    embedding_bits: int | None = None,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    force: bool = False,
) -> Path:
    """Write the quantized checkpoint to `dst` and return it."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ValueError("the destination must differ from the source folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())) and not force:
        raise FileExistsError(f"{dst} exists and is not empty (use --force to replace it)")

    loaded = load_checkpoint(src, bits=bits, group_size=group_size, embedding_bits=embedding_bits)
    weights = {disk_name(k): v for k, v in tree_flatten(loaded.model.parameters())}
    weights = dict(sorted(weights.items()))

    tmp = dst.with_name(f".{dst.name}.converting")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _write_weights(tmp, weights, max_shard_bytes)
        del weights
        config = dict(loaded.raw_config)
        # per-module entries use the same (mlx-vlm) names as the tensors; mlx-lm and mlx-vlm
        # write the block under both keys (transformers reads `quantization_config`)
        quantization = {disk_name(k): v for k, v in loaded.quantization.items()}
        config["quantization"] = quantization
        config["quantization_config"] = dict(quantization)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        _copy_side_files(src, tmp)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def _write_weights(folder: Path, weights: dict[str, mx.array], max_shard_bytes: int) -> None:
    shards = make_shards(weights, max_shard_bytes)
    n = len(shards)
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards):
        file_name = "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        mx.save_safetensors(str(folder / file_name), shard, metadata={"format": "mlx"})
        total += sum(v.nbytes for v in shard.values())
        weight_map.update(dict.fromkeys(shard, file_name))
        shards[i] = {}
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2))


def _copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer, chat template, generation and processor configs: every other regular file."""
    for path in sorted(src.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.name in ("config.json", INDEX_FILE) or path.suffix in _WEIGHT_SUFFIXES:
            continue
        shutil.copy2(path, dst / path.name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="checkpoint folder with the original float weights")
    parser.add_argument("dst", type=Path, help="folder to write the quantized checkpoint to")
    parser.add_argument("--bits", type=int, default=4, choices=[4, 8], help="default 4")
    parser.add_argument("--group-size", type=int, default=64, choices=[32, 64, 128])
    parser.add_argument(
        "--embedding-bits",
        type=int,
        choices=[4, 5, 6, 8],
        help="give the embedding/LM head its own precision (mixed; default: same as --bits)",
    )
    parser.add_argument(
        "--shard-size-gb", type=float, default=DEFAULT_SHARD_BYTES / (1 << 30), help="default 5"
    )
    parser.add_argument("--force", action="store_true", help="replace a non-empty destination")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        dst = convert(
            args.src,
            args.dst,
            bits=args.bits,
            group_size=args.group_size,
            embedding_bits=args.embedding_bits,
            max_shard_bytes=int(args.shard_size_gb * (1 << 30)),
            force=args.force,
        )
    except (CheckpointError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    size = sum(p.stat().st_size for p in dst.glob("*.safetensors"))
    print(
        f"wrote {args.bits}-bit checkpoint to {dst} ({size / 1e9:.2f} GB of weights, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    return 0


__all__ = ["convert", "disk_name", "make_shards"]
