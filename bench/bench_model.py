"""Benchmark (not a test): our Gemma 4 unified network vs mlx-vlm 0.7.10's, on one random checkpoint.

One run, one mid-size random bf16 checkpoint (written by the test checkpoint factory with
bigger sizes, several hundred MB), each measurement in a fresh subprocess so peak RSS is
clean:

- prefill tok/s, decode tok/s and peak RSS for ours and for mlx-vlm, same harness for both
  (one forward over the prompt with `logits_to_keep=1`, then greedy decode one token per
  forward, `mx.eval` per token), in bf16 and with both sides loading the same 4-bit
  checkpoint written by `gemma-desk convert`; ratios ours/peer;
- peak RSS while loading bf16 -> 4-bit (quantize on load) vs the final in-memory model size.

mlx-vlm is never a dependency of ours: it is installed with --no-deps into a scratch folder
and imported only by the peer subprocess (PYTHONPATH):

    .venv/bin/pip download mlx-vlm==0.7.10 --no-deps -d .bench/dl
    .venv/bin/pip install --no-deps --target .bench/peer-site .bench/dl/mlx_vlm-0.7.10-*.whl \
        requests urllib3 charset_normalizer certifi
    .venv/bin/python bench/bench_model.py

Keep it short on a 2-core machine: the defaults take a few minutes on the CPU backend.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEER_SITE = ROOT / ".bench" / "peer-site"
WORK = ROOT / ".bench" / "bench-model"


# --------------------------------------------------------------------------- helpers


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def model_nbytes(model) -> int:
    from mlx.utils import tree_flatten

    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def prompt_ids(vocab_size: int, length: int, seed: int = 0):
    import mlx.core as mx

    rng = np.random.default_rng(seed)
    return mx.array(rng.integers(0, vocab_size, size=(1, length)), dtype=mx.int32)


def time_generation(prefill, decode, make_cache, prompt, n_decode: int, repeats: int) -> dict:
    """Best-of-`repeats` prefill and decode throughput through one shared harness."""
    import mlx.core as mx

    prefill_s, decode_s, tokens = [], [], None  # index 0 is the warm-up
    for _ in range(repeats + 1):  # the first round warms up (kernels, allocator)
        cache = make_cache()
        t0 = time.perf_counter()
        logits = prefill(prompt, cache)
        y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
        mx.eval(y)
        t1 = time.perf_counter()
        out = [y.item()]
        for _ in range(n_decode):
            logits = decode(y, cache)
            y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
            mx.eval(y)
            out.append(y.item())
        t2 = time.perf_counter()
        prefill_s.append(t1 - t0)
        decode_s.append(t2 - t1)
        tokens = out
    p, d = min(prefill_s[1:]), min(decode_s[1:])
    return {
        "prefill_tok_s": prompt.shape[1] / p,
        "decode_tok_s": n_decode / d,
        "prefill_s": p,
        "decode_s": d,
        "prefill_runs_s": prefill_s[1:],
        "decode_runs_s": decode_s[1:],
        "tokens": tokens,
    }


def matmul_floor_s(model, repeats: int = 5) -> float | None:
    """Seconds one decode step spends in its weight matrices alone (best of `repeats`).

    Every 2-D floating weight of the decoder layers and the (tied) embedding as LM head is
    multiplied by one token's activation vector, all in one graph, the way a decode step
    multiplies them; nothing else runs. No implementation of the network can decode faster
    than this with MLX's kernels, so `decode step / floor` shows how much per-token work
    outside the matrix kernels is left to win. None for quantized models (packed weights).
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = [
        w
        for name, w in tree_flatten(model.parameters())
        if w.ndim == 2
        and mx.issubdtype(w.dtype, mx.floating)
        and ("layers." in name or "embed_tokens" in name)
    ]
    if not weights or any("scales" in n for n, _ in tree_flatten(model.parameters())):
        return None
    inputs = {w.shape[1]: mx.random.normal((1, 1, w.shape[1])).astype(w.dtype) for w in weights}
    mx.eval(list(inputs.values()))
    best = float("inf")
    for _ in range(repeats + 1):  # the first pass warms up
        t0 = time.perf_counter()
        mx.eval([inputs[w.shape[1]] @ w.T for w in weights])
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------- workers


class Side:
    """One implementation behind the shared harness: its model and its generate-style calls."""

    def __init__(self, model, prefill, decode, make_cache) -> None:
        self.model, self.prefill, self.decode, self.make_cache = model, prefill, decode, make_cache


def load_ours(checkpoint: Path) -> Side:
    from mlx_model.loading import load_model

    model = load_model(checkpoint, lazy=False)
    return Side(
        model,
        prefill=lambda ids, cache: model(input_ids=ids, cache=cache, logits_to_keep=1),
        decode=lambda y, cache: model(input_ids=y, cache=cache),
        make_cache=model.make_cache,
    )


def load_peer(checkpoint: Path) -> Side:
    from mlx_model.testing.reference import prepare_torchvision_import

    prepare_torchvision_import()  # mlx-vlm imports transformers' processors
    from mlx_vlm.utils import load_model as peer_load

    model = peer_load(Path(checkpoint), lazy=False)

    def prefill(ids, cache):  # mlx-vlm's generate: get_input_embeddings, then the LM
        return model(ids, pixel_values=None, cache=cache, logits_to_keep=1).logits

    def decode(y, cache):  # mlx-vlm's generate: decode steps go straight to the LM
        return model.language_model(y, cache=cache, logits_to_keep=1).logits

    return Side(model, prefill, decode, model.language_model.make_cache)


def _timed_side(load, args) -> dict:
    base = rss_bytes()
    t0 = time.perf_counter()
    side = load(args.checkpoint)
    load_s = time.perf_counter() - t0
    prompt = prompt_ids(side.model.config.text_config.vocab_size, args.prompt)
    result = time_generation(
        side.prefill, side.decode, side.make_cache, prompt, args.decode, args.repeats
    )
    result.update(
        load_s=load_s,
        model_bytes=model_nbytes(side.model),
        rss_after_import=base,
        peak_rss=peak_rss_bytes(),
    )
    return result


def worker_ours(args) -> dict:
    import mlx_model.loading  # noqa: F401  (imports before the RSS baseline)

    return _timed_side(load_ours, args)


def worker_peer(args) -> dict:
    from mlx_model.testing.reference import prepare_torchvision_import

    prepare_torchvision_import()
    import mlx_vlm.utils  # noqa: F401  (imports before the RSS baseline)

    return _timed_side(load_peer, args)


def worker_interleaved(args) -> dict:
    """Both models in one process: prefills alternated, then decode steps alternated one by one
    with a weights-only pass.

    The shared machine's speed drifts by 10-20% between processes and even between rounds;
    steps taken side by side see the same drift, so their per-step ratios are the steadier
    figure for decode. Each step is timed alone (graph built and evaluated, argmax included).
    """
    import mlx.core as mx

    sides = {"ours": load_ours(args.checkpoint), "peer": load_peer(args.checkpoint)}
    prompt = prompt_ids(sides["ours"].model.config.text_config.vocab_size, args.prompt)

    def prefill_s(name: str) -> float:
        side = sides[name]
        cache = side.make_cache()
        t0 = time.perf_counter()
        mx.eval(side.prefill(prompt, cache))
        return time.perf_counter() - t0

    prefills: dict[str, list[float]] = {"ours": [], "peer": []}
    for i in range(args.interleaved_prefills + 1):  # the first pair warms up
        for name in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
            t = prefill_s(name)
            if i:
                prefills[name].append(t)

    state = {}
    for name, side in sides.items():
        cache = side.make_cache()
        logits = side.prefill(prompt, cache)
        y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
        mx.eval(y)
        state[name] = (cache, y)

    def step(name: str) -> float:
        cache, y = state[name]
        t0 = time.perf_counter()
        logits = sides[name].decode(y, cache)
        y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
        mx.eval(y)
        state[name] = (cache, y)
        return time.perf_counter() - t0

    def ops_per_step(name: str) -> int:
        """Nodes in the graph of one decode step (argmax included), from MLX's dot export."""
        import io

        cache, y = state[name]
        logits = sides[name].decode(y, cache)
        y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True).astype(mx.int32)
        dot = io.StringIO()
        mx.export_to_dot(dot, y)
        mx.eval(y)
        state[name] = (cache, y)
        return dot.getvalue().count("shape=rectangle")  # op nodes; arrays are ellipses

    ops = {name: ops_per_step(name) for name in sides}
    steps: dict[str, list[float]] = {"ours": [], "peer": [], "floor": []}
    for i in range(args.decode + 2):  # two warm-up steps, then the timed ones
        order = ("ours", "peer") if i % 2 == 0 else ("peer", "ours")  # neither always first
        times = {name: step(name) for name in order}
        floor = matmul_floor_s(sides["ours"].model, repeats=0)
        if i >= 2:
            for name, t in times.items():
                steps[name].append(t)
            steps["floor"].append(floor)
    ours, peer, floor = (np.array(steps[k]) for k in ("ours", "peer", "floor"))
    prefill_ours, prefill_peer = np.array(prefills["ours"]), np.array(prefills["peer"])
    return {
        "prefills": len(prefill_ours),
        "prefill_ratio": float(np.median(prefill_peer / prefill_ours)),
        "ours_prefill_s": float(np.median(prefill_ours)),
        "peer_prefill_s": float(np.median(prefill_peer)),
        "steps": len(ours),
        "ours_step_s": float(np.median(ours)),
        "peer_step_s": float(np.median(peer)),
        "floor_s": float(np.median(floor)),
        "speed_ratio": float(np.median(peer / ours)),  # ours/peer in tokens per second
        "ours_over_floor": float(np.median(ours / floor)),
        "peer_over_floor": float(np.median(peer / floor)),
        "ours_ops_per_step": ops["ours"],
        "peer_ops_per_step": ops["peer"],
    }


def worker_load4(args) -> dict:
    """Peak RSS while quantizing bf16 -> 4-bit on load vs the final in-memory size."""
    import mlx.core as mx

    from mlx_model.loading import load_model

    base = rss_bytes()
    mx.reset_peak_memory()
    t0 = time.perf_counter()
    model = load_model(args.checkpoint, bits=4, lazy=False)
    load_s = time.perf_counter() - t0
    final = model_nbytes(model)
    return {
        "load_s": load_s,
        "model_bytes": final,
        "rss_after_import": base,
        "peak_rss": peak_rss_bytes(),
        "mlx_peak_bytes": mx.get_peak_memory(),
    }


WORKERS = {
    "ours": worker_ours,
    "peer": worker_peer,
    "interleaved": worker_interleaved,
    "load4": worker_load4,
}


# --------------------------------------------------------------------------- driver


def make_checkpoints(args) -> tuple[Path, Path]:
    """The mid-size bf16 checkpoint and its 4-bit conversion (reused when already written)."""
    from mlx_model.convert import convert
    from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

    sizes = TinyModelSizes.in_12b_proportions(args.hidden, args.layers, args.vocab, args.window)
    tag = f"h{args.hidden}-l{args.layers}-v{args.vocab}-w{args.window}"
    bf16 = WORK / f"bf16-{tag}"
    q4 = WORK / f"q4-{tag}"
    if not (bf16 / "config.json").exists():
        print(f"writing the random bf16 checkpoint to {bf16} ...", flush=True)
        write_tiny_checkpoint(bf16, seed=0, dtype="bfloat16", sizes=sizes)
    if not (q4 / "config.json").exists():
        print(f"converting it to 4 bits at {q4} ...", flush=True)
        convert(bf16, q4, bits=4, force=True)
    return bf16, q4


def run_worker(kind: str, checkpoint: Path, args, prompt: int, decode: int) -> dict:
    env = dict(os.environ)
    if kind in ("peer", "interleaved"):
        env["PYTHONPATH"] = os.pathsep.join([str(PEER_SITE), str(ROOT)])
    else:
        env["PYTHONPATH"] = str(ROOT)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--checkpoint",
        str(checkpoint),
        "--prompt",
        str(prompt),
        "--decode",
        str(decode),
        "--repeats",
        str(args.repeats),
        "--interleaved-prefills",
        str(args.interleaved_prefills),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best_of(a: dict, b: dict) -> dict:
    """Per-measure best of two worker results (fastest prefill, fastest decode, lowest RSS)."""
    best = dict(a)
    for fast in ("prefill_tok_s", "decode_tok_s"):
        best[fast] = max(a[fast], b[fast])
    best["peak_rss"] = min(a["peak_rss"], b["peak_rss"])
    best["rss_after_import"] = (
        a["rss_after_import"] if best["peak_rss"] == a["peak_rss"] else b["rss_after_import"]
    )
    best["all_prefill_tok_s"] = a.get("all_prefill_tok_s", [a["prefill_tok_s"]]) + [
        b["prefill_tok_s"]
    ]
    best["all_decode_tok_s"] = a.get("all_decode_tok_s", [a["decode_tok_s"]]) + [b["decode_tok_s"]]
    return best


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens (bf16 runs)")
    parser.add_argument("--decode", type=int, default=16, help="decoded tokens (bf16 runs)")
    # MLX's CPU quantized matmul is slow for bf16 inputs (mlx-vlm's path: ~1.5 s per decoded
    # token at the default sizes), so the 4-bit runs are kept short; on a Mac raise them.
    parser.add_argument("--q-prompt", type=int, default=8, help="prompt tokens (4-bit runs)")
    parser.add_argument("--q-decode", type=int, default=4, help="decoded tokens (4-bit runs)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes after a warm-up")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating ours/peer processes (bf16 runs)"
    )
    parser.add_argument(
        "--interleaved-steps",
        type=int,
        default=48,
        help="bf16 decode steps alternated between the two models in one process",
    )
    parser.add_argument(
        "--interleaved-prefills",
        type=int,
        default=6,
        help="bf16 prefills alternated between the two models in one process",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    if not (PEER_SITE / "mlx_vlm").is_dir():
        print(f"mlx-vlm is not installed in {PEER_SITE}; see this script's docstring")
        return 2
    start = time.perf_counter()
    bf16, q4 = make_checkpoints(args)
    disk = sum(p.stat().st_size for p in bf16.glob("*.safetensors"))
    runs = {"bf16": (bf16, args.prompt, args.decode), "4-bit": (q4, args.q_prompt, args.q_decode)}
    print(
        f"checkpoint: {bf16.name} ({disk / 1e6:,.0f} MB bf16); best of {args.rounds} alternating "
        f"rounds (bf16) x {args.repeats} timed pass(es) after a warm-up"
    )
    for label, (_, prompt, decode) in runs.items():
        print(f"  {label}: prompt {prompt} tokens, {decode} decoded")
    figures: dict[str, dict] = {}
    for label, (checkpoint, prompt, decode) in runs.items():
        # Alternate the sides, fresh processes each round, and keep each side's best: the
        # machine is shared, so a round can be slowed by someone else's work.
        rounds = args.rounds if label == "bf16" else 1
        for r in range(rounds):
            for side in ("ours", "peer"):
                print(f"  running {side} ({label}, round {r + 1}/{rounds}) ...", flush=True)
                result = run_worker(side, checkpoint, args, prompt, decode)
                key = f"{side}-{label}"
                if key in figures:
                    result = _best_of(figures[key], result)
                figures[key] = result
    print(f"  running both in one process, {args.interleaved_steps} alternated decode steps ...")
    figures["interleaved"] = run_worker(
        "interleaved", bf16, args, args.prompt, args.interleaved_steps
    )
    print("  running bf16 -> 4-bit load ...", flush=True)
    figures["load4"] = run_worker("load4", bf16, args, 1, 1)

    print()
    print(
        f"{'':>14} {'prefill tok/s':>14} {'decode tok/s':>13} {'peak RSS':>11} "
        f"{'above imports':>14} {'model':>10}"
    )
    for label in ("bf16", "4-bit"):
        for side in ("ours", "peer"):
            f = figures[f"{side}-{label}"]
            print(
                f"{side + ' ' + label:>14} {f['prefill_tok_s']:>14.1f} {f['decode_tok_s']:>13.1f} "
                f"{mb(f['peak_rss']):>11} {mb(f['peak_rss'] - f['rss_after_import']):>14} "
                f"{mb(f['model_bytes']):>10}"
            )
        o, p = figures[f"ours-{label}"], figures[f"peer-{label}"]
        same = o["tokens"] == p["tokens"]
        above = (o["peak_rss"] - o["rss_after_import"]) / (p["peak_rss"] - p["rss_after_import"])
        print(
            f"{'ours/peer':>14} {o['prefill_tok_s'] / p['prefill_tok_s']:>13.2f}x "
            f"{o['decode_tok_s'] / p['decode_tok_s']:>12.2f}x {o['peak_rss'] / p['peak_rss']:>10.2f}x "
            f"{above:>13.2f}x   (greedy tokens identical: {same})"
        )
    inter = figures["interleaved"]
    print(
        f"\nbf16 prefill of {args.prompt} tokens, both models in one process, {inter['prefills']} "
        f"alternated pairs (medians): ours {inter['ours_prefill_s'] * 1e3:.1f} ms, peer "
        f"{inter['peer_prefill_s'] * 1e3:.1f} ms: ours/peer {inter['prefill_ratio']:.2f}x"
    )
    print(
        f"bf16 decode, both models in one process, {inter['steps']} steps alternated one by "
        f"one (medians): ours {inter['ours_step_s'] * 1e3:.1f} ms, peer "
        f"{inter['peer_step_s'] * 1e3:.1f} ms per token: ours/peer {inter['speed_ratio']:.2f}x"
        f"\n  the step's weight matmuls alone {inter['floor_s'] * 1e3:.1f} ms: ours "
        f"{inter['ours_over_floor']:.2f}x, peer {inter['peer_over_floor']:.2f}x that floor "
        f"(no implementation on these kernels can beat the peer by more than "
        f"{inter['peer_over_floor']:.2f}x)"
        f"\n  ops in one decode step's graph: ours {inter['ours_ops_per_step']}, peer "
        f"{inter['peer_ops_per_step']}"
    )
    load = figures["load4"]
    ratio = (load["peak_rss"] - load["rss_after_import"]) / load["model_bytes"]
    print(
        f"\nbf16 -> 4-bit load: peak RSS {mb(load['peak_rss'])} "
        f"({mb(load['peak_rss'] - load['rss_after_import'])} above the {mb(load['rss_after_import'])} "
        f"after imports), final model {mb(load['model_bytes'])}: {ratio:.2f}x the final size "
        f"(target <= 1.25x); MLX peak {mb(load['mlx_peak_bytes'])}; {load['load_s']:.1f} s"
    )
    for label in ("bf16",):
        for side in ("ours", "peer"):
            f = figures[f"{side}-{label}"]
            if "all_decode_tok_s" in f:
                rounds = ", ".join(
                    f"{p:.1f}/{d:.1f}"
                    for p, d in zip(f["all_prefill_tok_s"], f["all_decode_tok_s"], strict=True)
                )
                print(f"{side} {label} per round (prefill/decode tok/s): {rounds}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
