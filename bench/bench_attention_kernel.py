"""Benchmark (not a test): one prefill chunk's attention alone, key blocks against MLX's plain path.

    nice .venv/bin/python bench/bench_attention_kernel.py --head-dims 16,128,256

One process, random float32 inputs: a chunk of `--queries` queries (the last positions of a
`--keys`-token causal prompt, `--heads` query heads sharing one KV head, as the 12B's full
layers) against all its keys. Our blocked attention (`mlx_model.attention.blocked_attention`,
the block the default attention budget gives, as the model uses it) and MLX's
`mx.fast.scaled_dot_product_attention` (the plain path, whole score matrix) run in turn,
the order swapped every round; prints the median seconds of each and ours/plain speed
(above 1: ours is faster), with the largest difference between their outputs.

It isolates what `bench_long_context.py`'s whole-model figures mix with the rest of the
network: whether the online softmax costs more than the one-pass softmax at a head dim.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(head_dim: int, heads: int, queries: int, keys: int, rounds: int) -> dict:
    import mlx.core as mx

    from mlx_model.attention import AttentionMask, AttentionOptions, block_size, blocked_attention

    q = mx.random.normal((1, heads, queries, head_dim))
    k = mx.random.normal((1, 1, keys, head_dim))
    v = mx.random.normal((1, 1, keys, head_dim))
    mx.eval(q, k, v)
    scale = head_dim**-0.5
    block = block_size(AttentionOptions().budget_bytes, heads * queries, queries)
    mask = AttentionMask(q_start=keys - queries, length=queries, k_start=0)

    def plain():
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")

    def ours():
        return blocked_attention(q, k, v, mask, block, scale=scale)

    reference, candidate = plain(), ours()
    difference = float(mx.abs(candidate - reference).max())
    del reference, candidate
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    sides = [("plain", plain), ("ours", ours)]
    for round_ in range(rounds):
        for name, run in sides if round_ % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            mx.eval(run())
            times[name].append(time.perf_counter() - start)
    plain_s, ours_s = statistics.median(times["plain"]), statistics.median(times["ours"])
    return {"head_dim": head_dim, "block": block, "plain_s": plain_s, "ours_s": ours_s,
            "speed": plain_s / ours_s, "max_difference": difference}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head-dims", default="16,128,256")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--queries", type=int, default=512, help="the prefill chunk")
    parser.add_argument("--keys", type=int, default=32_768, help="the context")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"{args.heads} query heads, 1 KV head, {args.queries} queries against {args.keys:,} "
          f"keys (causal), float32; median of {args.rounds} alternated rounds")  # fmt: skip
    print(f"{'head dim':>8} {'block':>6} {'plain s':>8} {'ours s':>8} {'ours/plain speed':>17} "
          f"{'max diff':>9}")  # fmt: skip
    for head_dim in (int(d) for d in args.head_dims.split(",")):
        r = measure(head_dim, args.heads, args.queries, args.keys, args.rounds)
        print(f"{r['head_dim']:>8} {r['block']:>6} {r['plain_s']:>8.2f} {r['ours_s']:>8.2f} "
              f"{r['speed']:>17.2f} {r['max_difference']:>9.1e}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
