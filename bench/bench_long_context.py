"""Benchmark (not a test): prefill memory and speed at long contexts, ours vs MLX's plain path vs mlx-vlm.

One run, one random checkpoint (float32; attention like the 12B's full layers in miniature:
query heads, one KV head, several full layers, from `TinyModelSizes.wide_attention`), one
fresh subprocess per measurement. For each context (4K, 16K, 32K by default) and each of

- ours: `mlx_model` with its default attention (MLX's kernel while a chunk's temporaries fit
  the attention budget, key blocks with the online softmax past it);
- plain: `mlx_model` with `AttentionOptions(mode="plain")`, i.e. `mx.fast.scaled_dot_product_attention`
  for every chunk (what the model did before key blocks);
- mlx-vlm 0.7.10 (never a dependency; installed into .bench/peer-site as bench_model.py says),

it prints MLX's peak memory (`mx.get_peak_memory`, counted from before the weights load) above
the weights, the KV cache bytes after the prompt, their ratio, and prefill tokens/s; "out of
memory" when MLX fails to allocate. For ours also the memory plan's prediction.

With the CPU backend's reference BLAS a full 32K prefill of even this small model takes hours,
so the KV cache is filled with random keys/values up to the last `--tail-chunks` chunks and
only those run through the network (the same for all three): the peak is there (the last
chunks see the most keys), and tokens/s is the prefill speed at that context (the slowest
part of a prefill). Ours and plain get room for the whole prompt in the full layers' caches
first (`reserve_cache`, as the engine's prefill does); mlx-vlm's caches grow, and are copied,
chunk by chunk. On a Mac pass `--tail-chunks 0` for whole prefills.

    .venv/bin/python bench/bench_long_context.py    # about 20 minutes on 2 shared CPU cores
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEER_SITE = ROOT / ".bench" / "peer-site"
WORK = ROOT / ".bench" / "bench-long-context"
SIDES = ("ours", "plain", "mlx-vlm")
WORKERS = SIDES + ("speed",)


def checkpoint(args) -> Path:
    from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

    tag = f"f{args.full_layers}-h{args.heads}-d{args.head_dim}-w{args.window}"
    folder = WORK / tag
    if not (folder / "config.json").exists():
        sizes = TinyModelSizes.wide_attention(
            full_layers=args.full_layers,
            heads=args.heads,
            full_head_dim=args.head_dim,
            window=args.window,
        )
        write_tiny_checkpoint(folder, sizes=sizes, with_vision=False, with_audio=False)
    return folder


def _load(side: str, folder: Path):
    """(model, forward(ids, cache) -> logits, make_cache)."""
    if side == "mlx-vlm":
        from mlx_model.testing.reference import prepare_torchvision_import

        prepare_torchvision_import()
        from mlx_vlm.utils import load_model as peer_load

        model = peer_load(folder, lazy=False)

        def forward(ids, cache):
            return model(ids, pixel_values=None, cache=cache, logits_to_keep=1).logits

        return model, forward, model.language_model.make_cache
    from mlx_model.attention import AttentionOptions
    from mlx_model.loading import load_model

    model = load_model(folder, lazy=False)
    if side == "plain":
        model.attention_options = AttentionOptions(mode="plain")

    def forward(ids, cache):
        return model(ids, cache=cache, logits_to_keep=1)

    return model, forward, model.make_cache


def worker(args) -> dict:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    gc.collect()
    base = mx.get_active_memory()
    model, forward, make_cache = _load(args.side, args.checkpoint)
    weights = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    vocab = model.config.text_config.vocab_size
    rng = np.random.default_rng(0)

    def ids(n):
        return mx.array(rng.integers(32, min(vocab, 600), size=(1, n)), dtype=mx.int32)

    # Learn each cache's (KV heads, head dim) from a short warm-up forward (also compiles).
    probe = make_cache()
    mx.eval(forward(ids(16), probe))
    shapes = [(c.keys.shape[1], c.keys.shape[3]) for c in probe]
    del probe

    chunk, context = args.chunk, args.context
    run = context if args.tail_chunks == 0 else min(context, args.tail_chunks * chunk)
    cache = make_cache()
    if args.side != "mlx-vlm":  # as the engine's prefill does: room for the whole prompt at once
        from mlx_model.cache import reserve_cache

        reserve_cache(cache, context)
    if context > run:
        for c, (heads, dim) in zip(cache, shapes, strict=True):
            shape = (1, heads, context - run, dim)
            c.update_and_fetch(mx.random.normal(shape), mx.random.normal(shape))
        mx.eval([c.state for c in cache])
    gc.collect()
    mx.reset_peak_memory()
    prompt = ids(run)
    try:
        t0 = time.perf_counter()
        for start in range(0, run, chunk):
            logits = forward(prompt[:, start : start + chunk], cache)
            mx.eval(logits, [c.state for c in cache])
        seconds = time.perf_counter() - t0
    except (RuntimeError, MemoryError) as exc:  # MLX: "[malloc] ... out of memory" and kin
        return {"error": f"out of memory ({str(exc)[:80]})"}
    kv = sum(c.keys.nbytes + c.values.nbytes for c in cache)  # buffers, not just the filled part
    result = {
        "peak_above_weights": mx.get_peak_memory() - base - weights,
        "weights": weights,
        "kv": kv,
        "tok_s": run / seconds,
        "tokens_run": run,
    }
    if args.side == "ours":
        from mlx_model.memory_plan import plan_memory, read_checkpoint_config

        config, dtype_bytes, _ = read_checkpoint_config(args.checkpoint)
        plan = plan_memory(
            config,
            bits=None,
            context_length=context,
            dtype_bytes=dtype_bytes,
            prefill_chunk=chunk,
            device_budget_bytes=10**12,
        )
        result["plan_above_weights"] = plan.mlx_peak_bytes - plan.weights_bytes
        # what does not grow with the context: attention, activations, logits
        result["plan_constant"] = sum(
            plan.breakdown[f"headroom.{k}"] for k in ("attention", "activations", "logits")
        )
        result["paths"] = [a.describe() for a in plan.attention]
    return result


def speed_worker(args) -> dict:
    """Ours vs the plain path on the same model in one process, chunks alternated: the shared
    machine's speed drifts between processes, steps side by side see the same drift."""
    import mlx.core as mx

    from mlx_model.attention import AttentionOptions
    from mlx_model.cache import reserve_cache
    from mlx_model.loading import load_model

    model = load_model(args.checkpoint, lazy=False)
    rng = np.random.default_rng(1)
    vocab = model.config.text_config.vocab_size
    chunk, context = args.chunk, args.context
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    for r in range(args.rounds + 1):  # the first round warms up
        for side in ("ours", "plain") if r % 2 else ("plain", "ours"):
            model.attention_options = AttentionOptions(mode="plain" if side == "plain" else "auto")
            cache = model.make_cache()
            reserve_cache(cache, context)
            for c, spec in zip(cache, model.config.text_config.layers, strict=True):
                shape = (1, spec.num_key_value_heads, context - chunk, spec.head_dim)
                c.update_and_fetch(mx.random.normal(shape), mx.random.normal(shape))
            mx.eval([c.state for c in cache])
            ids = mx.array(rng.integers(32, min(vocab, 600), size=(1, chunk)), dtype=mx.int32)
            t0 = time.perf_counter()
            mx.eval(model(ids, cache=cache, logits_to_keep=1))
            if r:
                times[side].append(time.perf_counter() - t0)
            del cache
    ratios = [p / o for p, o in zip(times["plain"], times["ours"], strict=True)]
    return {"speed_ratio": float(np.median(ratios)), "ratios": ratios, "times": times}


def run_worker(side: str, context: int, folder: Path, args) -> dict:
    env = dict(os.environ)
    paths = [str(ROOT)] + ([str(PEER_SITE)] if side == "mlx-vlm" else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    cmd = [sys.executable, __file__, "--worker", "--side", side, "--context", str(context)]
    cmd += ["--checkpoint", str(folder), "--chunk", str(args.chunk)]
    cmd += ["--tail-chunks", str(args.tail_chunks), "--rounds", str(args.rounds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        if "memory" in proc.stderr.lower() or proc.returncode in (-9, 137):
            return {"error": f"out of memory ({tail[0][:80]})"}
        raise RuntimeError(f"{side} at {context} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", default="4096,16384,32768")
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--tail-chunks", type=int, default=1, help="0: whole prefills")
    parser.add_argument("--full-layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument(
        "--speed-contexts",
        default="16384,32768",
        help="contexts where ours and plain alternate chunks in one process ('' for none)",
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternated rounds (speed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--context", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(speed_worker(args) if args.side == "speed" else worker(args)))
        return 0
    if not (PEER_SITE / "mlx_vlm").is_dir():
        print(f"mlx-vlm is not installed in {PEER_SITE}; see bench/bench_model.py's docstring")
        return 2
    sys.path.insert(0, str(ROOT))
    folder = checkpoint(args)
    contexts = [int(c) for c in args.contexts.split(",")]
    print(
        f"checkpoint {folder.name}: {args.full_layers} full layers ({args.heads} query heads, "
        f"1 KV head, head dim {args.head_dim}) + {args.full_layers} sliding (window "
        f"{args.window}), float32; chunk {args.chunk}; "
        + ("whole prefills" if args.tail_chunks == 0 else f"last {args.tail_chunks} chunk(s) run")
    )
    figures: dict[str, dict] = {}
    start = time.perf_counter()
    for context in contexts:
        for side in SIDES:
            print(f"  {side} at {context // 1024}K ...", flush=True)
            figures[f"{side}@{context}"] = run_worker(side, context, folder, args)
    speed_contexts = [int(c) for c in args.speed_contexts.split(",") if c]
    for context in speed_contexts:
        print(f"  ours vs plain alternated at {context // 1024}K ...", flush=True)
        figures[f"speed@{context}"] = run_worker("speed", context, folder, args)
    print(f"\n(total {time.perf_counter() - start:.0f} s)\n")
    header = f"{'context':>8} {'side':>8} {'peak-weights':>13} {'KV':>9} {'ratio':>6} {'tok/s':>7}"
    print(header + "  notes")
    for context in contexts:
        plain = figures[f"plain@{context}"]
        for side in SIDES:
            r = figures[f"{side}@{context}"]
            if "error" in r:
                print(f"{context // 1024:>7}K {side:>8} {r['error']}")
                continue
            ratio = r["peak_above_weights"] / r["kv"]
            notes = ""
            if side == "ours":
                excess = r["peak_above_weights"] - 1.2 * r["kv"]
                notes = (
                    f"plan {mib(r['plan_above_weights'])}; peak - 1.2 x KV = {mib(excess)} "
                    f"(constant {mib(r['plan_constant'])})"
                )
                if "error" not in plain:
                    notes += f"; speed / plain {r['tok_s'] / plain['tok_s']:.2f}"
            print(
                f"{context // 1024:>7}K {side:>8} {mib(r['peak_above_weights']):>13} "
                f"{mib(r['kv']):>9} {ratio:>6.2f} {r['tok_s']:>7.1f}  {notes}"
            )
    for context in speed_contexts:
        r = figures[f"speed@{context}"]
        print(
            f"ours/plain prefill speed at {context // 1024}K, chunks alternated in one process: "
            f"{r['speed_ratio']:.2f} (median of {len(r['ratios'])}: "
            + ", ".join(f"{x:.2f}" for x in r["ratios"])
            + ")"
        )
    ours = figures[f"ours@{contexts[-1]}"]
    if "paths" in ours:
        print("\nours at the longest context: " + "; ".join(ours["paths"]))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
