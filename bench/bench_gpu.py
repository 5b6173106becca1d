"""Benchmark (not a test): the full-size Gemma 4 12B on a GPU (MLX's CUDA or Metal backend), ours vs mlx-vlm 0.7.10.

One command, one fresh subprocess per measurement, nothing written but a config and a
placeholder file (deleted at the end):

- **weights generated on the device**: random bf16 tensors with the 12B's shapes
  (`mlx_model/reference_configs/gemma-4-12B-it.config.json`), one seeded draw per tensor, so
  every process gets the very same weights; for 4-bit they are quantized module by module
  by the loader's own `quantize_layer_by_layer` (the float weights are never all resident);
- **ours**: the network loads them as `load_model` would, and the token loop is
  `mlx_model.generate.generate_step` (the engine's chunked prefill, 512-token chunks, then
  greedy decode);
- **mlx-vlm 0.7.10** (never a dependency; installed with `--no-deps` into
  `.bench/peer-site`, as bench_model.py says): the same tensors, named as `gemma-desk
  convert` writes them (4-bit: its packed weights, scales and biases and `quantization`
  entry), go through mlx-vlm's own `load_model` (its file reader is handed the arrays), and
  its own `generate_step` runs (2048-token prefill chunks, greedy);
- for each: prefill tok/s at 1K and 8K prompt tokens, decode tok/s right after each prompt
  (so at 1K and 8K of context), MLX's peak memory (`mx.get_peak_memory`: device memory on a
  GPU), and the first greedy tokens (the two sides should agree: same weights);
- the copy bandwidth (`a + 1` over a 4 GB bf16 array: bytes read + written per second), and
  decode as a fraction of the bandwidth roofline: bytes of weights a decode step reads (the
  language model's, as loaded; the tied LM head counted once) / bandwidth.

Setup (Linux with an NVIDIA GPU and a CUDA 13 driver; on a Mac leave out the CUDA line):

    pip install -e .                               # the project and its dependencies
    pip install "mlx[cuda13]==$(python -c 'import mlx.core as mx; print(mx.__version__)')"
    pip download mlx-vlm==0.7.10 --no-deps -d .bench/dl
    pip install --no-deps --target .bench/peer-site .bench/dl/mlx_vlm-0.7.10-*.whl
    python bench/bench_gpu.py --json .bench/gpu.json

The first line it prints names MLX's backend (`cuda`, `metal`); on the CPU backend the
full-size run is refused (bench_full_size.py is the CPU benchmark). At most about 30 GB of
device memory (bf16 weights, an 8K prompt, mlx-vlm's 2048-token chunks); each worker is
stopped after `--timeout` seconds (150) and none starts past `--budget` (540 s in all), so
the whole run stays under ten minutes. The same
script on a narrowed config runs on a CPU in a few minutes; there it only checks the
script (both sides' greedy tokens should agree), the figures mean nothing:

    python bench/bench_gpu.py --hidden 512 --intermediate 2048 --layers 4 --vocab 16384 \\
        --contexts 64,128 --decode 2 --repeats 1 --bandwidth-gb 0.25
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_full_size import (  # noqa: E402
    add_shape_arguments,
    bench_config,
    is_full_size,
    small_float,
)

PEER_SITE = ROOT / ".bench" / "peer-site"
WORK = ROOT / ".bench" / "gpu"
GB = 1_000_000_000
SIDES = ("ours", "mlx-vlm")
RESULT = "RESULT "


# --------------------------------------------------------------------------- weights


def random_weights(config: Any, seed: int) -> dict[str, Any]:
    """Our module path -> a lazy random bf16 tensor, for every parameter of the network.

    Matrices are normal with rms 1/sqrt(inputs); norms, biases, scalars and positions as
    bench_full_size draws them. Nothing is computed until a tensor is evaluated."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from mlx_model.memory_plan import instantiate_lazily

    weights = {}
    params = tree_flatten(instantiate_lazily(config).parameters())
    for i, (name, value) in enumerate(params):
        shape = tuple(value.shape)
        if len(shape) == 2 and name.endswith(".weight"):
            weights[name] = mx.random.normal(
                shape, dtype=mx.bfloat16, scale=1 / math.sqrt(shape[1]), key=mx.random.key(seed + i)
            )
        else:
            rng = np.random.default_rng(seed + i)
            weights[name] = mx.array(small_float(name, shape, rng).astype(np.float32)).astype(
                mx.bfloat16
            )
    return weights


def quantize_4bit(config: Any, weights: dict[str, Any]) -> dict[str, Any]:
    """Quantize `weights` in place to 4 bits (group 64) as the loader does on load; returns
    the network with quantized modules and config.json's `quantization` entry."""
    from mlx_model.loading import quantize_layer_by_layer
    from mlx_model.memory_plan import instantiate_lazily
    from mlx_model.quantization import QuantizationRecipe

    model = instantiate_lazily(config)
    entry = quantize_layer_by_layer(model, weights, QuantizationRecipe(bits=4, group_size=64))
    return {"model": model, "quantization": entry}


# --------------------------------------------------------------------------- sides


class Side:
    """A loaded network and its own token loop: `generate(ids, n)` yields n greedy ids."""

    def __init__(self, model: Any, generate: Any, prefill_chunk: int) -> None:
        self.model, self.generate, self.prefill_chunk = model, generate, prefill_chunk


def load_ours(raw: dict, precision: str, seed: int) -> Side:
    from mlx_lm.sample_utils import make_sampler

    from mlx_model.config import ModelConfig
    from mlx_model.generate import DEFAULT_PREFILL_CHUNK, generate_step
    from mlx_model.prompt import Prompt, media_token_ids

    config = ModelConfig.from_dict(raw)
    weights = random_weights(config, seed)
    if precision == "q4":
        model = quantize_4bit(config, weights)["model"]
    else:
        from mlx_model.memory_plan import instantiate_lazily

        model = instantiate_lazily(config)
    model.eval()
    model.load_weights(list(weights.items()), strict=True)
    del weights
    sampler = make_sampler(temp=0.0)
    media = media_token_ids(config)

    def generate(ids: np.ndarray, n: int):
        prompt = Prompt.from_inputs({"input_ids": ids[None]}, media)
        yield from generate_step(model, prompt, model.make_cache(), sampler=sampler, max_tokens=n)

    return Side(model, generate, DEFAULT_PREFILL_CHUNK)


def load_peer(raw: dict, precision: str, seed: int) -> Side:
    import mlx.core as mx

    from mlx_model.config import ModelConfig
    from mlx_model.convert import disk_name
    from mlx_model.testing.reference import prepare_torchvision_import

    prepare_torchvision_import()  # mlx-vlm imports transformers' processors
    import mlx_vlm.utils
    from mlx_vlm.generate.ar import generate_step as peer_generate_step
    from mlx_vlm.generate.common import DEFAULT_PREFILL_STEP_SIZE

    config = ModelConfig.from_dict(raw)
    weights = random_weights(config, seed)
    raw = json.loads(json.dumps(raw))
    if precision == "q4":
        raw["quantization"] = quantize_4bit(config, weights)["quantization"]
    on_disk = {disk_name(k): v for k, v in weights.items()}
    del weights
    folder = WORK / f"peer-{precision}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(raw))
    placeholder = folder / "model.safetensors"  # found by mlx-vlm's glob; never read
    mx.save_safetensors(str(placeholder), {"placeholder": mx.zeros((1,))})
    reader = mlx_vlm.utils._load_safetensors
    mlx_vlm.utils._load_safetensors = lambda path: on_disk
    try:
        model = mlx_vlm.utils.load_model(folder, lazy=False)
    finally:
        mlx_vlm.utils._load_safetensors = reader
    on_disk.clear()

    def generate(ids: np.ndarray, n: int):
        stream = peer_generate_step(
            mx.array(ids[None]), model, None, None, max_tokens=n, temperature=0.0
        )
        for token, _ in stream:
            yield int(token)

    return Side(model, generate, DEFAULT_PREFILL_STEP_SIZE)


# --------------------------------------------------------------------------- worker


def prompt_ids(raw: dict, length: int, seed: int) -> np.ndarray:
    """Random text ids, no special or media tokens."""
    vocab = raw["text_config"]["vocab_size"]
    special = {raw.get(k) for k in raw if k.endswith("token_id") or k.endswith("token_index")}
    ids = np.random.default_rng(seed).integers(300, vocab - 1000, size=length)
    ids[np.isin(ids, list(special))] = 300
    ids[0] = raw["text_config"]["bos_token_id"]
    return ids.astype(np.int32)


def timed_generation(side: Side, ids: np.ndarray, decode: int) -> dict:
    """Prefill time (to the first token) and per-token decode time of one greedy run."""
    import mlx.core as mx

    stamps, tokens = [], []
    t0 = time.perf_counter()
    for token in side.generate(ids, decode + 1):
        stamps.append(time.perf_counter())
        tokens.append(int(token))
    prefill_s = stamps[0] - t0
    decode_s = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    gc.collect()
    mx.clear_cache()
    return {"prefill_s": prefill_s, "decode_s": decode_s, "tokens": tokens}


def weights_read_per_token(model: Any) -> int:
    """Bytes a decode step reads: the language model's weights as loaded (the tied LM head
    once; the one embedding row it looks up is negligible)."""
    from mlx.utils import tree_flatten

    return sum(
        v.nbytes for k, v in tree_flatten(model.parameters()) if k.startswith("language_model.")
    )


def worker(args: argparse.Namespace) -> dict:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    raw = bench_config(args.hidden, args.intermediate, args.layers, args.vocab)
    if args.worker == "bandwidth":
        return bandwidth(args.bandwidth_gb)
    mx.reset_peak_memory()
    t0 = time.perf_counter()
    load = load_ours if args.worker == "ours" else load_peer
    side = load(raw, args.precision, args.seed)
    mx.eval(side.model.parameters())
    setup_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "setup_s": setup_s,
        "setup_peak": mx.get_peak_memory(),
        "model_bytes": sum(v.nbytes for _, v in tree_flatten(side.model.parameters())),
        "read_per_token": weights_read_per_token(side.model),
        "prefill_chunk": side.prefill_chunk,
        "contexts": {},
    }
    mx.reset_peak_memory()
    for context in args.contexts:
        ids = prompt_ids(raw, context, args.seed)
        runs = [timed_generation(side, ids, args.decode) for _ in range(args.repeats)]
        result["contexts"][str(context)] = {
            "prefill_tok_s": context / min(r["prefill_s"] for r in runs),
            "decode_tok_s": 1 / min(r["decode_s"] for r in runs),
            "tokens": runs[-1]["tokens"],
            "runs": [{k: v for k, v in r.items() if k != "tokens"} for r in runs],
        }
    result["peak"] = mx.get_peak_memory()
    if args.worker == "ours":
        from mlx_model.attention import current_backend
        from mlx_model.config import ModelConfig
        from mlx_model.memory_plan import plan_memory

        plan = plan_memory(
            ModelConfig.from_dict(raw),
            bits=4 if args.precision == "q4" else None,
            context_length=max(args.contexts) + args.decode,
            dtype_bytes=2,
            raise_if_too_big=False,
        )
        result["plan"] = {
            "backend": current_backend(),
            "total": plan.total_bytes,
            "mlx_peak": plan.mlx_peak_bytes,
        }
    return result


def bandwidth(gigabytes: float) -> dict:
    """Best of 10 `a + 1` over a bf16 array: (bytes read + written) / second."""
    import mlx.core as mx

    a = mx.random.uniform(shape=(int(gigabytes * GB) // 2,)).astype(mx.bfloat16)
    mx.eval(a)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        b = a + 1
        mx.eval(b)
        times.append(time.perf_counter() - t0)
        del b
    return {"bytes": 2 * a.nbytes, "best_s": min(times), "bytes_per_s": 2 * a.nbytes / min(times)}


# --------------------------------------------------------------------------- parent


def device_label() -> str:
    import mlx.core as mx

    backend = "cuda" if mx.cuda.is_available() else "metal" if mx.metal.is_available() else "cpu"
    info = mx.device_info()
    name = info.get("device_name") or info.get("architecture") or "?"
    memory = info.get("memory_size") or info.get("total_memory") or 0
    return f"MLX {mx.__version__}, {backend} backend, {name}, {memory / GB:.0f} GB"


def run_worker(
    kind: str, args: argparse.Namespace, precision: str = "", timeout: float = 0
) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--precision", precision or "bf16"]
    cmd += [a for a in args.passthrough]
    env = dict(os.environ)
    paths = [str(ROOT)] + ([str(PEER_SITE)] if kind == "mlx-vlm" else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {timeout:.0f} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith(RESULT)]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {out.returncode}: " + " | ".join(tail)}
    result = json.loads(lines[-1][len(RESULT) :])
    result["wall_s"] = time.perf_counter() - t0
    return result


def peer_available() -> bool:
    return (PEER_SITE / "mlx_vlm").is_dir()


def report(figures: dict, args: argparse.Namespace) -> None:
    contexts = [str(c) for c in args.contexts]
    bw = figures.get("bandwidth", {}).get("bytes_per_s")
    head = " / ".join(f"{int(c) // 1024}K" if int(c) >= 1024 else c for c in contexts)
    print(f"\n{'':18} prefill tok/s {head:>12}   decode tok/s {head:>12}   peak GB  model GB")
    for precision in args.precisions:
        rows = figures["runs"].get(precision, {})
        for side in SIDES:
            r = rows.get(side)
            if r is None:
                continue
            label = f"{precision} {side}"
            if "error" in r:
                print(f"{label:18} {r['error']}")
                continue
            pre = " / ".join(f"{r['contexts'][c]['prefill_tok_s']:.0f}" for c in contexts)
            dec = " / ".join(f"{r['contexts'][c]['decode_tok_s']:.1f}" for c in contexts)
            print(
                f"{label:18} {pre:>26}   {dec:>25}   {r['peak'] / GB:7.2f}  {r['model_bytes'] / GB:8.2f}"
            )
        ours, peer = rows.get("ours"), rows.get("mlx-vlm")
        if ours and peer and "error" not in ours and "error" not in peer:
            pre = " / ".join(
                f"{ours['contexts'][c]['prefill_tok_s'] / peer['contexts'][c]['prefill_tok_s']:.2f}x"
                for c in contexts
            )
            dec = " / ".join(
                f"{ours['contexts'][c]['decode_tok_s'] / peer['contexts'][c]['decode_tok_s']:.2f}x"
                for c in contexts
            )
            mem = ours["peak"] / peer["peak"]
            print(f"{precision + ' ours/mlx-vlm':18} {pre:>26}   {dec:>25}   {mem:6.2f}x")
            agree = [
                sum(
                    a == b
                    for a, b in zip(
                        ours["contexts"][c]["tokens"], peer["contexts"][c]["tokens"], strict=False
                    )
                )
                for c in contexts
            ]
            print(f"{'':18} greedy tokens equal (of {args.decode + 1}): {agree}")
        if ours and "plan" in ours:
            plan = ours["plan"]
            print(
                f"{'':18} ours: plan ({plan['backend']} backend) {plan['total'] / GB:.2f} GB total,"
                f" {plan['mlx_peak'] / GB:.2f} GB MLX peak; measured peak {ours['peak'] / GB:.2f} GB"
                f" = {ours['peak'] / plan['mlx_peak']:.2f}x its MLX peak"
            )
        if bw:
            for side in SIDES:
                r = rows.get(side)
                if not r or "error" in r:
                    continue
                roof = bw / r["read_per_token"]
                fractions = ", ".join(
                    f"{r['contexts'][c]['decode_tok_s'] / roof:.0%} at {c}" for c in contexts
                )
                print(
                    f"{'':18} {side}: {r['read_per_token'] / GB:.2f} GB read per token -> roofline"
                    f" {roof:.0f} tok/s; decode reaches {fractions}"
                )
    if bw:
        print(f"\ncopy bandwidth {bw / GB:.0f} GB/s (bytes read + written)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument(
        "--contexts", default="1024,8192", help="prompt lengths (default 1024,8192)"
    )
    parser.add_argument("--decode", type=int, default=32, help="decode steps after each prompt")
    parser.add_argument("--repeats", type=int, default=2, help="runs per prompt; the best counts")
    parser.add_argument("--precisions", default="bf16,q4", help="bf16, q4 or both (default)")
    parser.add_argument("--sides", default="ours,mlx-vlm", help="ours, mlx-vlm or both")
    parser.add_argument("--bandwidth-gb", type=float, default=4.0, help="copy test size")
    parser.add_argument("--timeout", type=float, default=150, help="seconds per worker")
    parser.add_argument("--budget", type=float, default=540, help="no worker starts past this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--worker", choices=("ours", "mlx-vlm", "bandwidth"), help=argparse.SUPPRESS
    )
    parser.add_argument("--precision", default="bf16", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.contexts = [int(c) for c in str(args.contexts).split(",")]
    args.precisions = [p for p in args.precisions.split(",") if p]
    if args.worker:
        print(RESULT + json.dumps(worker(args)), flush=True)
        return 0

    raw = bench_config(args.hidden, args.intermediate, args.layers, args.vocab)
    args.passthrough = [
        f"--{k}={v}"
        for k, v in (
            ("hidden", args.hidden),
            ("intermediate", args.intermediate),
            ("layers", args.layers),
            ("vocab", args.vocab),
            ("contexts", ",".join(map(str, args.contexts))),
            ("decode", args.decode),
            ("repeats", args.repeats),
            ("bandwidth-gb", args.bandwidth_gb),
            ("seed", args.seed),
        )
        if v is not None
    ]
    sides = [s for s in args.sides.split(",") if s]
    if "mlx-vlm" in sides and not peer_available():
        print(f"mlx-vlm is not installed in {PEER_SITE}: ours only (see the docstring)")
        sides.remove("mlx-vlm")
    scope = "12B reference" if is_full_size(raw) else "narrowed (the figures mean nothing)"
    figures: dict[str, Any] = {"device": device_label(), "config": scope, "runs": {}}
    print(f"{figures['device']}; config: {scope}", flush=True)
    if is_full_size(raw) and ", cpu backend," in figures["device"]:
        print("the full-size run needs a GPU backend here; on a CPU run bench_full_size.py")
        return 2
    t0 = time.perf_counter()
    try:
        figures["bandwidth"] = run_worker("bandwidth", args, timeout=args.timeout)
        for precision in args.precisions:
            for side in sides:
                left = args.budget - (time.perf_counter() - t0)
                if left < 30:
                    result = {"error": f"not run: past the {args.budget:.0f} s budget"}
                else:
                    print(f"  {precision} {side} ...", flush=True)
                    result = run_worker(side, args, precision, min(args.timeout, left))
                figures["runs"].setdefault(precision, {})[side] = result
                if "error" in result:
                    print(f"    {result['error']}", flush=True)
                else:
                    print(f"    done in {result['wall_s']:.0f} s", flush=True)
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    report(figures, args)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return (
        0
        if all("error" not in r for rows in figures["runs"].values() for r in rows.values())
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
