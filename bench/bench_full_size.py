"""Benchmark (not a test): the full-size Gemma 4 12B with random weights, on this machine's CPU.

One command, two stages, each measured in a fresh subprocess watched from outside:

1. **4-bit, pre-quantized.** A random checkpoint with the real config's shapes
   (`mlx_model/reference_configs/gemma-4-12B-it.config.json`) is written straight in 4 bits
   (packed weights, scales and biases, as `gemma-desk convert` lays them out), tensor by
   tensor in row blocks, so the writer never holds more than one block. A worker plans
   memory and applies the limits as the engine does, loads it through `load_model`, runs a
   64-token prefill holding an image (16 soft tokens) and an audio clip (10 soft tokens)
   plus 8 greedy decode steps, and reports load time, peak memory against the plan's
   prediction for that configuration (goal: within 10%), whether every logit is finite, and
   the time per token.
2. **bf16 -> 4-bit on load.** The 4-bit checkpoint is deleted, a random bf16 checkpoint in
   the release's on-disk layout is written in shards of at most 5 GB, and a worker loads it
   with `bits=4` (quantize on load): peak resident memory must stay <= 1.25x the final
   in-memory model; then the same prefill runs.

Memory is reported two ways: MLX's own counters (`mx.get_peak_memory`: buffers MLX
allocated) and the process's resident set from /proc, sampled every 20 ms by the parent:
`RssAnon` (anonymous pages: heap, MLX buffers, Python) and `RssFile` (mapped file pages:
shared libraries, and checkpoint files if a loader maps them). The plan is compared with
both; the kernel's high-water mark `VmHWM` (anonymous + file) is printed too.

The parent waits until the machine has memory to spare before each stage, kills a worker
that goes past the goal's ceiling (or when the machine runs low), and deletes every
checkpoint it wrote, also on errors. Checkpoints go under `.bench/full-size/` (ignored).

    nice -n 15 .venv/bin/python bench/bench_full_size.py --json .bench/full-size.json

A narrowed copy of the same config for trying the script in about a minute (0.2 B
parameters; there the plan's fixed runtime reserve outweighs the model, so the 10% check is
for the 12B):

    .venv/bin/python bench/bench_full_size.py --hidden 1024 --intermediate 4096 --layers 6 \
        --vocab 32768
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORK = ROOT / ".bench" / "full-size"
GB = 1_000_000_000
BLOCK_BYTES = 64 << 20  # rows written per block
RELEASE_SHARD_BYTES = 5 * GB  # the Hub's usual shard cap ("5GB"), as the bf16 release is split
SAMPLE_S = 0.02


# --------------------------------------------------------------------------- config


_MEDIA_TOKEN_KEYS = (
    "boi_token_id",
    "eoi_token_id",
    "image_token_id",
    "video_token_id",
    "boa_token_id",
    "eoa_token_index",
    "audio_token_id",
)


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """--hidden, --intermediate, --layers, --vocab: a narrowed 12B config (see `bench_config`)."""
    parser.add_argument("--hidden", type=int, help="narrower hidden size (default: the 12B's)")
    parser.add_argument("--intermediate", type=int, help="MLP size (default: the 12B's)")
    parser.add_argument("--layers", type=int, help="fewer layers (default: the 12B's 48)")
    parser.add_argument("--vocab", type=int, help="smaller vocabulary (default: the 12B's)")


def bench_config(
    hidden: int | None, intermediate: int | None, layers: int | None, vocab: int | None
) -> dict:
    """The 12B reference config, optionally narrowed/shortened (for trying the script).

    A smaller `vocab` moves the multimodal token ids to its last entries (where the 12B has
    them, relative to its own vocabulary)."""
    from mlx_model.config import REFERENCE_CONFIG

    config = json.loads(REFERENCE_CONFIG.read_text())
    config.pop("_comment", None)
    text = config["text_config"]
    if vocab is not None:
        shift = vocab - text["vocab_size"]
        text["vocab_size"] = text["vocab_size_per_layer_input"] = vocab
        for key in _MEDIA_TOKEN_KEYS:
            config[key] += shift
    if hidden is not None:
        text["hidden_size"] = hidden
        config["vision_config"]["mm_embed_dim"] = hidden
        config["vision_config"]["output_proj_dims"] = hidden
    if intermediate is not None:
        text["intermediate_size"] = intermediate
    if layers is not None:
        types = text["layer_types"][:layers]
        types[-1] = "full_attention"
        text["num_hidden_layers"] = layers
        text["layer_types"] = types
    return config


def is_full_size(config: dict) -> bool:
    from mlx_model.config import REFERENCE_CONFIG

    reference = json.loads(REFERENCE_CONFIG.read_text())["text_config"]
    text = config["text_config"]
    keys = ("hidden_size", "intermediate_size", "layer_types", "vocab_size")
    return all(text[k] == reference[k] for k in keys)


# --------------------------------------------------------------------------- random tensors


def random_bf16_bits(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """`n` random bf16 values (as uint16 bits) of root-mean-square about `rms`, built from raw
    random bits: random sign and mantissa, exponent spread over four octaves. Far cheaper
    than drawing normals (12 B of them would take ~10 minutes on two cores)."""
    e = int(round(math.log2(rms / 1.76)))  # E[m^2 4^k] over m in [1,2), k in 0..3 = 3.1 * 4^e
    r = np.frombuffer(rng.bytes(2 * n), dtype=np.uint16)
    exponent = ((r >> 7) & 3) + np.uint16(127 + e - 2)
    return (r & np.uint16(0x807F)) | (exponent << np.uint16(7))


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits, rounded to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def small_float(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random values for the unquantized small tensors (norms, biases, scalars, positions)."""
    if name.endswith("layer_scalar"):
        return rng.uniform(0.6, 1.4, size=shape)
    if name.endswith("pos_embedding"):
        return rng.normal(0.0, 0.5, size=shape)
    if name.endswith(".bias"):
        return rng.normal(0.0, 0.1, size=shape)
    return rng.uniform(0.7, 1.3, size=shape)  # norm scales (w, not 1 + w)


@dataclass
class TensorSpec:
    """One tensor of a safetensors file and how to fill it, row block by row block."""

    name: str
    dtype: str  # safetensors code: "BF16", "U32"
    shape: tuple[int, ...]
    kind: str  # "matrix" (random bf16), "small" (norm/bias/...), "packed", "scales", "biases"
    rms: float = 0.0  # matrices: target root-mean-square; scales/biases: dequantized rms
    seed: int = 0

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * (4 if self.dtype == "U32" else 2)

    def blocks(self):
        """The tensor's bytes in row blocks of at most BLOCK_BYTES."""
        rng = np.random.default_rng(self.seed)
        if self.kind == "small":
            yield to_bf16_bits(small_float(self.name, self.shape, rng).astype(np.float32))
            return
        rows = self.shape[0]
        row_elems = math.prod(self.shape[1:])
        row_bytes = self.nbytes // rows
        step = max(1, BLOCK_BYTES // row_bytes)
        for start in range(0, rows, step):
            n = min(step, rows - start) * row_elems
            if self.kind == "matrix":
                yield random_bf16_bits(rng, n, self.rms)
            elif self.kind == "packed":  # 4-bit codes, uniform over 0..15
                yield np.frombuffer(rng.bytes(4 * n), dtype=np.uint32)
            else:
                # Affine 4-bit: w = q * scale + bias, q uniform on 0..15 (std 4.61): scale =
                # rms / 4.61 (spread by +-20%), bias = -7.5 * scale (zero mean). Scales and
                # biases draw the same stream, so the pair stays consistent.
                scale = rng.uniform(0.8, 1.2, size=n).astype(np.float32) * np.float32(
                    self.rms / 4.61
                )
                yield to_bf16_bits(scale if self.kind == "scales" else scale * np.float32(-7.5))


def write_safetensors(path: Path, specs: list[TensorSpec], metadata: dict[str, str]) -> int:
    """Write one safetensors file tensor by tensor (the header first: all shapes are known).
    Flushed to disk and dropped from the page cache at the end. Returns the bytes written."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for spec in specs:
        header[spec.name] = {
            "dtype": spec.dtype,
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for spec in specs:
            written = 0
            for block in spec.blocks():
                f.write(memoryview(np.ascontiguousarray(block)).cast("B"))
                written += block.nbytes
            if written != spec.nbytes:
                raise RuntimeError(f"{spec.name}: wrote {written} bytes, expected {spec.nbytes}")
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return 8 + len(text) + offset


def write_sharded(
    folder: Path, specs: list[TensorSpec], shard_bytes: int, metadata: dict[str, str]
) -> int:
    """Consecutive tensors into shards of at most `shard_bytes`, plus the index."""
    shards: list[list[TensorSpec]] = []
    size = 0
    for spec in specs:
        if not shards or (size + spec.nbytes > shard_bytes and shards[-1]):
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    total = 0
    weight_map: dict[str, str] = {}
    for i, group in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(folder / name, group, metadata)
        weight_map.update({s.name: name for s in group})
        print(f"    {name}: {sum(s.nbytes for s in group) / GB:.2f} GB", flush=True)
    index = {
        "metadata": {"total_size": sum(s.nbytes for s in specs)},
        "weight_map": weight_map,
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return total


def q4_specs(config: dict, seed: int) -> tuple[list[TensorSpec], dict]:
    """Every tensor of the 4-bit checkpoint `gemma-desk convert` would write for `config`:
    names in mlx-vlm's layout, quantized modules as packed weight + scales + biases."""
    from mlx.utils import tree_flatten

    from mlx_model.config import ModelConfig
    from mlx_model.convert import disk_name
    from mlx_model.memory_plan import instantiate_lazily
    from mlx_model.quantization import QuantizationRecipe, quantized_tensor_shapes

    model = instantiate_lazily(ModelConfig.from_dict(config))  # lazy: shapes only
    recipe = QuantizationRecipe(bits=4, group_size=64)
    plan = recipe.plan(model)
    specs: list[TensorSpec] = []
    for i, (name, value) in enumerate(sorted(tree_flatten(model.parameters()))):
        module = name.rsplit(".", 1)[0]
        shape = tuple(value.shape)
        if name.endswith(".weight") and module in plan:
            rms = 1.0 / math.sqrt(shape[-1])
            shapes = quantized_tensor_shapes(shape, 4, 64)
            base = disk_name(module)
            specs.append(
                TensorSpec(f"{base}.weight", "U32", shapes["weight"], "packed", 0, seed + i)
            )
            for part in ("scales", "biases"):
                specs.append(
                    TensorSpec(f"{base}.{part}", "BF16", shapes[part], part, rms, seed + i)
                )
        else:
            specs.append(TensorSpec(disk_name(name), "BF16", shape, "small", 0, seed + i))
    specs.sort(key=lambda s: s.name)
    return specs, recipe.config_entry(plan)


def bf16_specs(config: dict, seed: int) -> list[TensorSpec]:
    """Every tensor of the bf16 release checkpoint, under its on-disk names, in model order."""
    from mlx_model.testing.checkpoint_factory import weight_shapes

    specs = []
    for i, (name, shape) in enumerate(weight_shapes(config).items()):
        if len(shape) == 2 and name.endswith(".weight") and "norm" not in name:
            specs.append(
                TensorSpec(name, "BF16", shape, "matrix", 1 / math.sqrt(shape[1]), seed + i)
            )
        else:
            specs.append(TensorSpec(name, "BF16", shape, "small", 0, seed + i))
    return specs


def write_checkpoint(folder: Path, config: dict, fmt: str, seed: int) -> dict:
    """Write the random checkpoint (`fmt` "q4" or "bf16"); returns its size and timing."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    config = json.loads(json.dumps(config))
    t0 = time.perf_counter()
    if fmt == "q4":
        from mlx_model.convert import DEFAULT_SHARD_BYTES

        specs, entry = q4_specs(config, seed)
        config["quantization"] = entry
        total = write_sharded(folder, specs, DEFAULT_SHARD_BYTES, {"format": "mlx"})
    else:
        specs = bf16_specs(config, seed)
        total = write_sharded(folder, specs, RELEASE_SHARD_BYTES, {"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return {"disk_bytes": total, "write_s": time.perf_counter() - t0, "tensors": len(specs)}


# --------------------------------------------------------------------------- worker


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """Resident-memory fields of /proc/<pid>/status, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def multimodal_prompt(config, prompt_tokens: int, seed: int = 0) -> dict[str, Any]:
    """A `prompt_tokens` prompt holding one image (a 4x4 grid of 48-pixel patches: 16 soft
    tokens) and one 0.4 s audio clip (10 soft tokens), made by the processor's own patching
    and framing, with the placeholders, markers and token types the processor would give."""
    from mlx_model.cache import token_types_from_input_ids
    from mlx_model.processing.audio import batch_features, frame_audio
    from mlx_model.processing.image import patchify

    rng = np.random.default_rng(seed)
    vision, text = config.vision_config, config.text_config
    side = vision.patch_size * vision.pooling_kernel_size
    yy, xx = np.mgrid[0 : 4 * side, 0 : 4 * side]
    rgb = np.stack([xx * 255 // (4 * side), yy * 255 // (4 * side), (xx + yy) % 256], -1)
    image = patchify(rgb.astype(np.uint8), 70, vision.patch_size, vision.pooling_kernel_size)
    rate = 16_000
    t = np.arange(int(0.4 * rate)) / rate
    clip = frame_audio(
        (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32),
        config.audio_config.samples_per_token,
    )
    features, mask = batch_features([clip])

    def words(n: int) -> list[int]:
        return rng.integers(300, text.vocab_size - 1000, size=n).tolist()

    media = (
        [config.boi_token_id]
        + [config.image_token_id] * image.num_soft_tokens
        + [config.eoi_token_id]
        + words(6)
        + [config.boa_token_id]
        + [config.audio_token_id] * clip.num_soft_tokens
        + [config.eoa_token_id]
    )
    rest = prompt_tokens - 1 - len(media)
    if rest < 2:
        raise ValueError(f"--prompt {prompt_tokens} is too short for the image and the audio clip")
    ids = [text.bos_token_id] + words(rest // 2) + media + words(rest - rest // 2)
    ids_np = np.array([ids], dtype=np.int32)
    return {
        "input_ids": ids_np,
        "pixel_values": image.pixel_values[None],
        "image_position_ids": image.position_ids[None],
        "input_features": features,
        "input_features_mask": mask,
        "mm_token_type_ids": token_types_from_input_ids(
            ids_np, config.image_token_id, config.video_token_id, config.audio_token_id
        ),
        "soft_tokens": {"image": image.num_soft_tokens, "audio": clip.num_soft_tokens},
    }


def kv_nbytes(cache: list[Any]) -> int:
    """Bytes the caches have allocated (all slots, used or not)."""
    return sum(c.keys.nbytes + c.values.nbytes for c in cache if c.keys is not None)


def say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


def worker(args: argparse.Namespace) -> dict:
    """Plan, apply the limits, load, prefill and decode, as the engine does; phases announced
    on stdout so the parent can attribute its memory samples."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlx_model.config import read_checkpoint_config
    from mlx_model.loading import load_model
    from mlx_model.memory_limits import apply_memory_limits
    from mlx_model.memory_plan import plan_memory

    config, dtype_bytes, _ = read_checkpoint_config(args.checkpoint)
    inputs = multimodal_prompt(config, args.prompt)
    soft_tokens = inputs.pop("soft_tokens")
    say(phase="imported", status=proc_status())

    bits = 4 if config.quantization is None else None
    plan = plan_memory(
        config,
        bits=bits,
        context_length=args.prompt + args.decode,
        dtype_bytes=dtype_bytes,
        raise_if_too_big=False,
    )
    limits = apply_memory_limits(plan)
    say(phase="load")
    mx.reset_peak_memory()
    t0 = time.perf_counter()
    model = load_model(args.checkpoint, bits=bits, lazy=False)
    load_s = time.perf_counter() - t0
    model_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    load_peak = mx.get_peak_memory()
    after_load = {"active": mx.get_active_memory(), "cache": mx.get_cache_memory()}
    status_after_load = proc_status()

    say(phase="prefill")
    mx.reset_peak_memory()
    ids = mx.array(inputs.pop("input_ids"))
    cache = model.make_cache()
    t0, c0 = time.perf_counter(), time.process_time()
    logits = model(ids, cache=cache, logits_to_keep=1, **inputs)
    mx.eval(logits, [c.state for c in cache])
    prefill_s, prefill_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    finite = [bool(mx.all(mx.isfinite(logits)).item())]
    logit_range = [float(logits.min().item()), float(logits.max().item())]

    prefill_peak = mx.get_peak_memory()
    kv_after_prefill = kv_nbytes(cache)
    say(phase="decode")
    mx.reset_peak_memory()
    steps: list[float] = []
    cpu_steps: list[float] = []
    y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
    tokens = [int(y.item())]
    for _ in range(args.decode):
        t0, c0 = time.perf_counter(), time.process_time()
        logits = model(y, cache=cache)
        y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
        ok = mx.all(mx.isfinite(logits))
        mx.eval(y, ok)
        steps.append(time.perf_counter() - t0)
        cpu_steps.append(time.process_time() - c0)
        finite.append(bool(ok.item()))
        tokens.append(int(y.item()))
    say(phase="done")
    return {
        "checkpoint_bits": bits or config.quantization.get("bits"),
        "quantized_on_load": bits is not None,
        "prompt_tokens": int(ids.shape[1]),
        "soft_tokens": soft_tokens,
        "decode_steps": args.decode,
        "load_s": load_s,
        "prefill_s": prefill_s,
        "prefill_cpu_s": prefill_cpu_s,
        "decode_step_s": steps,
        "decode_step_cpu_s": cpu_steps,
        "kv_after_prefill": kv_after_prefill,
        "kv_allocated": kv_nbytes(cache),
        "finite": all(finite),
        "last_prefill_logit_range": logit_range,
        "tokens": tokens,
        "model_bytes": model_bytes,
        "parameters": plan.parameter_count,
        "mlx_peak_load": load_peak,
        "mlx_peak_prefill": prefill_peak,
        "mlx_peak_decode": mx.get_peak_memory(),
        "mlx_after_load": after_load,
        "status_after_load": status_after_load,
        "status_end": proc_status(),
        "plan": {
            "context": plan.context_length,
            "weights": plan.weights_bytes,
            "kv": plan.kv_bytes,
            "headroom": plan.headroom_bytes,
            "total": plan.total_bytes,
            "mlx_peak": plan.mlx_peak_bytes,
            "backend": plan.backend,
            "breakdown": plan.breakdown,
        },
        "limits": {"memory": limits.memory_limit, "cache": limits.cache_limit},
    }


# --------------------------------------------------------------------------- parent


@dataclass
class Watch:
    """A worker subprocess and its memory, sampled from /proc every SAMPLE_S seconds."""

    cap_above_baseline: int  # kill the worker past baseline + this many anonymous bytes
    min_available: int  # ... or when the machine's MemAvailable falls below this
    load_cap_above_baseline: int | None = None  # a tighter ceiling while it loads
    phase: str = "start"
    baseline_anon: int | None = None
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    killed: str | None = None
    messages: list[dict] = field(default_factory=list)

    def run(self, cmd: list[str]) -> dict:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        stderr: list[str] = []
        reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        err_reader = threading.Thread(
            target=lambda: stderr.extend(proc.stderr),
            daemon=True,  # type: ignore[arg-type]
        )
        reader.start()
        err_reader.start()
        try:
            self._watch(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        proc.wait()
        reader.join(5)
        err_reader.join(5)
        result = next((m["result"] for m in self.messages if "result" in m), None)
        if self.killed:
            return {"killed": self.killed, "peaks": self.peaks}
        if proc.returncode != 0 or result is None:
            raise RuntimeError(f"worker failed ({proc.returncode}):\n{''.join(stderr)[-4000:]}")
        result["peaks"] = self.peaks
        result["baseline_anon"] = self.baseline_anon
        return result

    def _watch(self, proc: subprocess.Popen) -> None:
        """Sample the worker until it exits; kill it past the ceiling or when memory runs low."""
        last_avail = 0.0
        while proc.poll() is None:
            try:
                status = proc_status(proc.pid)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                break
            peak = self.peaks.setdefault(self.phase, {})
            for key in ("RssAnon", "RssFile", "VmRSS"):
                peak[key] = max(peak.get(key, 0), status.get(key, 0))
            above = self.cap_above_baseline
            if self.phase == "load" and self.load_cap_above_baseline is not None:
                above = self.load_cap_above_baseline
            cap = (self.baseline_anon or 0) + above
            if self.baseline_anon is not None and status.get("RssAnon", 0) > cap:
                self.killed = (
                    f"anonymous RSS {status['RssAnon'] / GB:.2f} GB passed the ceiling "
                    f"{cap / GB:.2f} GB in phase {self.phase}"
                )
                proc.kill()
                break
            now = time.monotonic()
            if now - last_avail > 0.5:
                last_avail = now
                if mem_available() < self.min_available:
                    self.killed = (
                        f"the machine's MemAvailable fell below {self.min_available / GB:.1f} GB "
                        f"in phase {self.phase}"
                    )
                    proc.kill()
                    break
            time.sleep(SAMPLE_S)

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.messages.append(message)
            if "phase" in message:
                if message["phase"] == "imported":
                    self.baseline_anon = message["status"]["RssAnon"]
                self.phase = message["phase"]
                print(f"    worker: {self.phase}", flush=True)


def wait_for_memory(needed: int, timeout_s: float) -> int:
    """Block until MemAvailable >= needed (the machine is shared); returns what is available."""
    start = time.monotonic()
    available = mem_available()
    while available < needed:
        if time.monotonic() - start > timeout_s:
            raise MemoryError(
                f"MemAvailable stayed below {needed / GB:.1f} GB for {timeout_s:.0f} s "
                f"({available / GB:.1f} GB)"
            )
        print(f"    waiting for memory: {available / GB:.1f} of {needed / GB:.1f} GB available")
        time.sleep(15)
        available = mem_available()
    return available


def run_stage(
    folder: Path, args: argparse.Namespace, cap: int, decode: int, load_cap: int | None = None
) -> dict:
    needed = cap + int(args.spare_gb * GB)
    available = wait_for_memory(needed, args.wait_s)
    print(f"    MemAvailable {available / GB:.1f} GB (needed {needed / GB:.1f})", flush=True)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--checkpoint",
        str(folder),
        "--prompt",
        str(args.prompt),
        "--decode",
        str(decode),
    ]
    watch = Watch(
        cap_above_baseline=cap,
        load_cap_above_baseline=load_cap,
        min_available=int(args.min_available_gb * GB),
    )
    return watch.run(cmd)


def plan_rows(config: dict, contexts: list[int]) -> list[dict]:
    from mlx_model.config import ModelConfig
    from mlx_model.memory_plan import instantiate_lazily, plan_memory

    model_config = ModelConfig.from_dict(config)
    model = instantiate_lazily(model_config)
    rows = []
    for context in contexts:
        plan = plan_memory(
            model_config,
            bits=4,
            context_length=context,
            device_budget_bytes=10**15,
            model=model,
            raise_if_too_big=False,
        )
        rows.append(
            {
                "context": context,
                "weights": plan.weights_bytes,
                "kv": plan.kv_bytes,
                "headroom": plan.headroom_bytes,
                "total": plan.total_bytes,
            }
        )
    return rows


def check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(
            f"{folder}: {free / GB:.1f} GB free on disk, the checkpoint needs {needed / GB:.1f} GB"
        )


def gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


def report_run(label: str, r: dict) -> None:
    """Print one worker's figures."""
    if "killed" in r:
        print(f"{label}: worker killed: {r['killed']}")
        for phase, peak in r["peaks"].items():
            print(f"    {phase}: RssAnon {gb(peak['RssAnon'])}, RssFile {gb(peak['RssFile'])}")
        return
    plan = r["plan"]
    base = r["baseline_anon"]
    peaks = r["peaks"]
    anon_peak = max(p["RssAnon"] for p in peaks.values())
    file_peak = max(p["RssFile"] for p in peaks.values())
    load_anon = peaks.get("load", {}).get("RssAnon", 0)
    steps = np.array(r["decode_step_s"]) if r["decode_step_s"] else None
    print(f"{label}:")
    print(f"    parameters {r['parameters']:,}; model in memory {gb(r['model_bytes'])}")
    print(f"    load {r['load_s']:.1f} s")
    print(
        f"    prefill {r['prompt_tokens']} tokens (image {r['soft_tokens']['image']} + audio "
        f"{r['soft_tokens']['audio']} soft tokens): {r['prefill_s']:.1f} s = "
        f"{r['prefill_s'] / r['prompt_tokens']:.2f} s/token ({r['prefill_cpu_s']:.0f} "
        f"CPU-seconds)"
    )
    if steps is not None:
        cpu = np.array(r["decode_step_cpu_s"])
        print(
            f"    decode {len(steps)} steps: median {np.median(steps):.2f} s/token "
            f"(min {steps.min():.2f}, max {steps.max():.2f}; median {np.median(cpu):.2f} "
            f"CPU-seconds/token)"
        )
    print(
        f"    logits finite: {r['finite']} (last prefill logits in "
        f"[{r['last_prefill_logit_range'][0]:.2f}, {r['last_prefill_logit_range'][1]:.2f}])"
    )
    print(
        f"    plan for {plan['context']} tokens ({plan['backend']}): {gb(plan['total'])} (weights "
        f"{gb(plan['weights'])} + KV {gb(plan['kv'])} + headroom {gb(plan['headroom'])})"
    )
    mlx_peak = max(r["mlx_peak_load"], r["mlx_peak_prefill"], r["mlx_peak_decode"])
    working = max(
        r["mlx_peak_prefill"] - r["model_bytes"] - r["kv_after_prefill"],
        r["mlx_peak_decode"] - r["model_bytes"] - r["kv_allocated"],
    )
    print(
        f"    by part, plan / measured: weights {gb(plan['weights'])} / {gb(r['model_bytes'])}; "
        f"KV {gb(plan['kv'])} / {gb(r['kv_allocated'])} allocated; headroom "
        f"{gb(plan['headroom'])} (runtime reserve {gb(plan['breakdown']['headroom.runtime'])} "
        f"of it) / {gb(working)} (MLX peak of a step above the weights and its KV)"
    )
    print(
        f"    MLX peak: load {gb(r['mlx_peak_load'])}, prefill {gb(r['mlx_peak_prefill'])}, "
        f"decode {gb(r['mlx_peak_decode'])}; highest = {mlx_peak / plan['total']:.3f}x the plan "
        f"total, {mlx_peak / plan['mlx_peak']:.3f}x its MLX peak ({gb(plan['mlx_peak'])}: the "
        f"total without the runtime reserve)"
    )
    print(
        f"    process: peak RssAnon {gb(anon_peak)} ({gb(anon_peak - base)} above the "
        f"{gb(base)} after imports) = {anon_peak / plan['total']:.3f}x the plan total; "
        f"peak RssFile {gb(file_peak)}; VmHWM {gb(r['status_end']['VmHWM'])}"
    )
    within = all(
        abs(m / p - 1) <= 0.10
        for m, p in (
            (mlx_peak, plan["mlx_peak"]),
            (mlx_peak, plan["total"]),
            (anon_peak, plan["total"]),
        )
    )
    print(
        "    plan within 10% (MLX peak vs its MLX peak and total, RssAnon vs total): "
        + ("yes" if within else "NO")
    )
    if r["quantized_on_load"]:
        ratio = (load_anon - base) / r["model_bytes"]
        print(
            f"    quantize on load: peak RssAnon while loading {gb(load_anon)}, "
            f"{gb(load_anon - base)} above imports = {ratio:.3f}x the final model "
            f"(goal <= 1.25x: {'met' if ratio <= 1.25 else 'NOT met'}); MLX peak while loading "
            f"{r['mlx_peak_load'] / r['model_bytes']:.3f}x"
        )


def save(figures: dict, path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument("--prompt", type=int, default=64, help="prefill tokens (default 64)")
    parser.add_argument("--decode", type=int, default=8, help="decode steps (default 8)")
    parser.add_argument(
        "--bf16-decode", type=int, default=0, help="decode steps after the bf16 load (default 0)"
    )
    parser.add_argument("--stages", default="q4,bf16", help="q4, bf16 or both (default)")
    parser.add_argument("--work", type=Path, default=WORK, help="checkpoint folder (deleted)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--spare-gb",
        type=float,
        default=5.0,
        help="MemAvailable to leave the machine's other users",
    )
    parser.add_argument(
        "--min-available-gb",
        type=float,
        default=1.0,
        help="kill the worker below this MemAvailable",
    )
    parser.add_argument("--wait-s", type=float, default=1800, help="longest wait for memory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        say(result=worker(args))
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    config = bench_config(args.hidden, args.intermediate, args.layers, args.vocab)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    start = time.perf_counter()
    figures: dict[str, Any] = {"config": "12B reference" if is_full_size(config) else "narrowed"}
    figures["plan_rows"] = plan_rows(config, [8192, 32768, 131072])
    context = args.prompt + args.decode
    figures["plan_run"] = plan_rows(config, [context])[0]
    weights = figures["plan_run"]["weights"]
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"config: {figures['config']} (hidden {config['text_config']['hidden_size']}, "
        f"{config['text_config']['num_hidden_layers']} layers); plan for 4-bit weights and "
        f"{context} tokens: {gb(figures['plan_run']['total'])}",
        flush=True,
    )
    try:
        if "q4" in stages:
            folder = args.work / "q4"
            check_disk(args.work, int(weights * 1.02) + 2 * GB)
            print(f"writing the random 4-bit checkpoint to {folder} ...", flush=True)
            figures["q4_write"] = write_checkpoint(folder, config, "q4", args.seed)
            print(
                f"  {gb(figures['q4_write']['disk_bytes'])} in "
                f"{figures['q4_write']['write_s']:.0f} s; loading it and running the prompt ...",
                flush=True,
            )
            # Ceiling: 1.25x the plan's total above the imports (the goal is within 10%).
            figures["q4"] = run_stage(
                folder, args, int(1.25 * figures["plan_run"]["total"]), args.decode
            )
            shutil.rmtree(folder)
            report_run("4-bit checkpoint, loaded as stored", figures["q4"])
            save(figures, args.json)
        if "bf16" in stages:
            folder = args.work / "bf16"
            bf16_bytes = sum(s.nbytes for s in bf16_specs(config, 0))
            check_disk(args.work, bf16_bytes + 2 * GB)
            print(f"writing the random bf16 checkpoint to {folder} ...", flush=True)
            figures["bf16_write"] = write_checkpoint(folder, config, "bf16", args.seed)
            print(
                f"  {gb(figures['bf16_write']['disk_bytes'])} in "
                f"{figures['bf16_write']['write_s']:.0f} s; quantizing it on load ...",
                flush=True,
            )
            # Ceilings: while loading, the goal itself (1.25x the final model above the imports)
            # plus 2%; afterwards, as for the 4-bit checkpoint.
            run_cap = int(1.25 * figures["plan_run"]["total"])
            figures["bf16"] = run_stage(
                folder, args, run_cap, args.bf16_decode, load_cap=int(1.25 * 1.02 * weights)
            )
            shutil.rmtree(folder)
            report_run("bf16 checkpoint, quantized to 4 bits on load", figures["bf16"])
            save(figures, args.json)
    finally:
        for sub in ("q4", "bf16"):
            shutil.rmtree(args.work / sub, ignore_errors=True)

    print("plan, 4-bit weights (GB):")
    for row in figures["plan_rows"]:
        print(
            f"  {row['context'] // 1024:>4}K: weights {row['weights'] / GB:.2f} + KV "
            f"{row['kv'] / GB:.2f} + headroom {row['headroom'] / GB:.2f} = {row['total'] / GB:.2f}"
        )
    print(f"total {time.perf_counter() - start:.0f} s")
    save(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
