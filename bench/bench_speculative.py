"""Benchmark (not a test): speculative decoding with the multi-token-prediction drafter on a mid-size target.

One run, one random mid-size bf16 target from the test checkpoint factory (the 12B's
proportions, as `bench_model.py`), and a drafter of the 12B assistant's shape scaled to it
(4 layers, 3 sliding + 1 full, MLP 8x its hidden size, tied dense head):

1. **A drafter that agrees with its target.** A random target's plain greedy output repeats
   one id forever, so the workload bans the last 16 ids (`no_recent_repeats`, an mlx-lm
   logits processor applied by the plain loop, by our speculative loop at every verified
   position, and to the drafter's logits). The target continues `--train-prompts` random
   prompts that way (batched); its final hidden states and its last full and sliding
   layers' keys/values over those sequences are the drafter's inputs exactly as at
   inference (one batched forward of `--anchors` consecutive positions per sequence, masks
   as `target_kv` gives them); the drafter (float32, Adam) learns to predict the target's
   next 1..3 ids (unrolled through its own `post_projection` state, teacher-forced ids) for
   `--distill-steps`, and is saved in bf16 in the Hugging Face layout. Random weights have no
   structure a small drafter can generalize (on prompts it never saw it accepts ~nothing,
   printed as "held-out"), so the end-to-end runs use prompts it was distilled on: the
   acceptance it reaches there is printed beside every speed-up.
2. **(a) Costs**, interleaved round by round at a fixed context: one plain decode step; one
   verify forward of 1 + k tokens (k = 1..4) relative to it; the drafter's cost per drafted
   token (4 steps in one graph / 4), relative to the plain step.
3. **(b) End to end**, same prompts, alternating: plain greedy decoding (the engine's loop)
   against `speculative_generate_step` (adaptive k, and fixed k = 1, 2); decode tok/s after
   the first token, acceptance and accepted drafts per round beside the ratio, and whether
   the tokens are identical. Then the same without the processor (the workload mlx-vlm's
   MTP loop can run: it takes no logits processors).
4. **(c) Derived** (not measured): the speed-up the measured costs imply at the published
   acceptance rates (0.76 at k = 1, 0.58 at k = 2): (1 + k * rate) / (verify(k) + k * draft).
5. **mlx-vlm 0.7.10** (never a dependency; installed with --no-deps into `.bench/peer-site`
   as `bench_model.py` describes) runs the same target and drafter checkpoints through its
   own MTP loop (`generate_step(..., draft_model=..., draft_kind="mtp")`) in a subprocess,
   without processors: its plain and speculative decode tok/s on the same prompts.

    nice -n 10 .venv/bin/python bench/bench_speculative.py --train-prompts 8 \
        --continuation 64 --distill-steps 120 --eval-prompts 2 --decode 48 --cost-rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEER_SITE = ROOT / ".bench" / "peer-site"
WORK = ROOT / ".bench" / "bench-speculative"
PUBLISHED = {1: 0.76, 2: 0.58}  # mlx-vlm, 12B 4-bit on a Mac: acceptance at k drafted tokens


# --------------------------------------------------------------------------- workload

RECENT = 16


def no_recent_repeats(tokens, logits):
    """Ban the last `RECENT` ids (an mlx-lm logits processor; `tokens` [T] or [B, T]).

    A random target's greedy continuation repeats one token forever, which any drafter that
    copies predicts; with its recent ids banned the target's choice is a real function of the
    context, which the drafter has to learn."""
    import mlx.core as mx

    recent = tokens.reshape(logits.shape[0], -1)[:, -RECENT:].astype(mx.int32)
    return mx.put_along_axis(logits, recent, mx.array(-mx.inf, dtype=logits.dtype), axis=-1)


# --------------------------------------------------------------------------- checkpoints


def make_target(args) -> Path:
    from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

    sizes = TinyModelSizes.in_12b_proportions(args.hidden, args.layers, args.vocab, args.window)
    folder = WORK / f"target-h{args.hidden}-l{args.layers}-v{args.vocab}-w{args.window}"
    if not (folder / "config.json").exists():
        print(f"writing the random bf16 target to {folder} ...", flush=True)
        write_tiny_checkpoint(folder, seed=0, dtype="bfloat16", sizes=sizes, with_audio=False)
    return folder


def drafter_sizes(args):
    """The 12B assistant's shape (4 layers, 3 sliding + 1 full, MLP 8x hidden) at
    `--drafter-hidden`."""
    from mlx_model.testing.checkpoint_factory import TinyAssistantSizes

    return TinyAssistantSizes(
        hidden_size=args.drafter_hidden,
        intermediate_size=8 * args.drafter_hidden,
        num_attention_heads=8,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
    )


def param_count(model) -> int:
    from mlx.utils import tree_flatten

    return sum(v.size for _, v in tree_flatten(model.parameters()))


# --------------------------------------------------------------------------- distillation


def greedy_continuations(target, prompts: np.ndarray, n: int, batch: int = 32) -> np.ndarray:
    """The target's greedy continuations of equal-length prompts, `batch` rows at a time."""
    import mlx.core as mx

    out = []
    for start in range(0, len(prompts), batch):
        rows = mx.array(prompts[start : start + batch])
        caches = target.make_cache()
        logits = target(rows, cache=caches, logits_to_keep=1)
        history = rows
        tokens = []
        for i in range(n):
            y = mx.argmax(no_recent_repeats(history, logits[:, -1, :]), axis=-1)
            mx.eval(y)
            tokens.append(np.array(y))
            history = mx.concatenate([history, y[:, None]], axis=1)
            logits = target(y[:, None], cache=caches)
            if (i + 1) % 16 == 0:
                print(f"  rows {start}+{len(rows)}: {i + 1}/{n} tokens", flush=True)
        out.append(np.stack(tokens, axis=1))
    return np.concatenate(out)


def target_features(target, seqs: np.ndarray) -> dict:
    """What the drafter reads at every position of `seqs` (one forward, no LM head)."""
    import mlx.core as mx

    from mlx_model.speculative import kv_slots

    ids = mx.array(seqs)
    caches = target.make_cache()
    hidden = target.hidden_states(ids, cache=caches)
    n = seqs.shape[1]
    kv = {
        t: (caches[s].keys[..., :n, :], caches[s].values[..., :n, :])
        for t, s in kv_slots(target.config.text_config).items()
    }
    embeds = target.language_model.embed(ids)
    f32 = mx.float32
    feats = {
        "hidden": hidden.astype(f32),
        "embeds": embeds.astype(f32),
        "kv": {t: (k.astype(f32), v.astype(f32)) for t, (k, v) in kv.items()},
    }
    mx.eval(feats)
    return feats


def distill(target, drafter, seqs: np.ndarray, prompt_len: int, args) -> dict:
    """Train `drafter` (float32) on the target's own sequences: `--distill-steps` steps, or
    fewer if `--distill-minutes` run out first."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from mlx_model.config import FULL, SLIDING
    from mlx_model.gemma4_assistant import SharedKV

    unroll, weights = 3, (1.0, 0.7, 0.5)
    n = seqs.shape[1]
    # anchors a (the round's last token) with x[a + 1] the target's own token; each step
    # trains on `--anchors` consecutive ones of `--batch` sequences
    lo, hi = prompt_len - 1, n - unroll
    span = min(args.anchors, hi - lo)
    window = drafter.window
    rng = np.random.default_rng(3)
    feats = [
        target_features(target, seqs[i : i + args.batch]) for i in range(0, len(seqs), args.batch)
    ]
    labels = [mx.array(seqs[i : i + args.batch]) for i in range(0, len(seqs), args.batch)]

    def masks_from(first: int) -> dict:
        a = np.arange(first, first + span)[:, None]
        keys = np.arange(n)[None]
        return {
            FULL: mx.array((keys < a)[None, None]),
            SLIDING: mx.array(((keys < a) & (keys >= a - window - 1))[None, None]),
        }

    def loss_fn(model, f, ids, first, masks):
        idx = mx.arange(first, first + span)
        shared = {t: SharedKV(k, v, masks[t]) for t, (k, v) in f["kv"].items()}
        h, total = f["hidden"][:, idx - 1], 0.0
        for j in range(unroll):
            x = mx.concatenate([f["embeds"][:, idx + j], h], axis=-1)
            h, logits = model(x, shared, first)
            ce = nn.losses.cross_entropy(logits, ids[:, idx + 1 + j], reduction="mean")
            total = total + weights[j] * ce
        return total / sum(weights)

    step = nn.value_and_grad(drafter, loss_fn)
    opt = optim.Adam(learning_rate=args.lr)
    deadline = time.perf_counter() + 60 * args.distill_minutes
    losses, steps, start = [], 0, time.perf_counter()
    while steps < args.distill_steps and time.perf_counter() < deadline:
        i = steps % len(feats)
        first = int(rng.integers(lo, hi - span + 1))
        loss, grads = step(drafter, feats[i], labels[i], first, masks_from(first))
        opt.update(drafter, grads)
        mx.eval(drafter.parameters(), opt.state, loss)
        losses.append(float(loss))
        steps += 1
        if steps % 25 == 0:
            recent = statistics.mean(losses[-25:])
            print(f"  distill step {steps}: loss {recent:.3f}", flush=True)
    return {
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "sequences": len(seqs),
        "anchors_per_step": span * args.batch,
        "loss_first": statistics.mean(losses[:10]),
        "loss_last": statistics.mean(losses[-10:]),
    }


def save_drafter(drafter, config: dict, folder: Path) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.astype(mx.bfloat16) for k, v in tree_flatten(drafter.parameters())}
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}, indent=2))


def make_drafter(args, target_dir: Path, target) -> tuple[Path, dict]:
    """The distilled drafter (reused when already written with these settings)."""
    from mlx_model.loading import load_drafter
    from mlx_model.testing.checkpoint_factory import write_tiny_assistant_checkpoint

    tag = f"d{args.drafter_hidden}-n{args.distill_steps}-s{args.train_prompts}"
    folder = WORK / f"{target_dir.name}-assistant-{tag}"
    log_file = folder / "distill.json"
    if log_file.exists() and not args.retrain:
        return folder, json.loads(log_file.read_text())
    init = WORK / f"{target_dir.name}-assistant-init-{args.drafter_hidden}"
    write_tiny_assistant_checkpoint(init, target_dir, sizes=drafter_sizes(args), dtype="float32")
    drafter = load_drafter(init, lazy=False)
    data = (
        WORK / f"{target_dir.name}-train-{args.train_prompts}x{args.prompt}+{args.continuation}.npz"
    )
    if data.exists():
        cached = np.load(data)
        seqs, data_s = cached["seqs"], float(cached["seconds"])
    else:
        rng = np.random.default_rng(1)
        vocab = target.config.text_config.vocab_size
        prompts = rng.integers(300, vocab - 10, size=(args.train_prompts, args.prompt))
        print(f"target continues {len(prompts)} prompts by {args.continuation} tokens", flush=True)
        t0 = time.perf_counter()
        cont = greedy_continuations(target, prompts, args.continuation)
        data_s = time.perf_counter() - t0
        seqs = np.concatenate([prompts, cont], axis=1)
        np.savez(data, seqs=seqs, seconds=data_s)
    print(f"distilling ({args.distill_steps} steps at most {args.distill_minutes:g} min) ...")
    log = distill(target, drafter, seqs, args.prompt, args)
    log.update(data_seconds=data_s, drafter_params=param_count(drafter))
    config = json.loads((init / "config.json").read_text())
    save_drafter(drafter, config, folder)
    log_file.write_text(json.dumps(log, indent=2))
    return folder, log


# --------------------------------------------------------------------------- measurements


def _held_out_prompts(args, vocab: int) -> np.ndarray:
    return np.random.default_rng(2).integers(300, vocab - 10, size=(args.eval_prompts, args.prompt))


def held_out_acceptance(target, drafter, prompts: np.ndarray, n: int) -> float:
    """Acceptance on prompts the drafter never saw (k = 2, the no-repeat workload)."""
    from mlx_model.speculative import DraftPolicy, MTPDrafter

    mtp = MTPDrafter(drafter, target)
    drafted = accepted = 0
    for prompt in prompts:
        policy = DraftPolicy(max_draft=2, adaptive=False)
        _, _, stats = spec_generate(target, mtp, prompt, n, policy, [no_recent_repeats])
        drafted, accepted = drafted + stats["drafted"], accepted + stats["accepted"]
    return accepted / drafted if drafted else 0.0


def measure_costs(target, drafter, prompt: np.ndarray, rounds: int) -> dict:
    """Seconds of a plain step, a verify of 1 + k tokens and a drafter step, interleaved."""
    import mlx.core as mx

    from mlx_model.speculative import MTPDrafter, rollback

    mtp = MTPDrafter(drafter, target)
    caches = target.make_cache()
    logits, hidden = target(
        mx.array(prompt[None]), cache=caches, return_hidden=True, logits_to_keep=1
    )
    token = int(mx.argmax(logits[0, -1]).item())
    rows: dict[str, list[float]] = {
        "plain": [],
        "draft": [],
        **{f"verify{k}": [] for k in range(1, 5)},
    }
    for r in range(rounds + 1):  # round 0 warms up
        t0 = time.perf_counter()
        out, hidden = target(mx.array([[token]]), cache=caches, return_hidden=True)
        mx.eval(out, hidden)
        times = {"plain": time.perf_counter() - t0}
        token = int(mx.argmax(out[0, -1]).item())
        for k in range(1, 5):
            t0 = time.perf_counter()
            out, h = target(mx.array([[token] * (k + 1)]), cache=caches, return_hidden=True)
            mx.eval(out, h)
            times[f"verify{k}"] = time.perf_counter() - t0
            rollback(caches, k)  # keeps the first token: the context grows by one, as a step
        mtp.start(caches, int(caches[0].offset))
        t0 = time.perf_counter()
        x, hh = mx.array([token]), hidden
        for _ in range(4):
            row, hh = mtp.step(x, hh)
            x = mx.argmax(row, axis=-1)
        mx.eval(x, hh)
        times["draft"] = (time.perf_counter() - t0) / 4
        if r:
            for key, value in times.items():
                rows[key].append(value)
    plain = rows["plain"]
    ratio = {
        key: statistics.median(v / p for v, p in zip(vals, plain, strict=True))
        for key, vals in rows.items()
    }
    return {
        "plain_s": statistics.median(plain),
        "relative": ratio,
        "context": int(caches[0].offset),
    }


def plain_generate(target, prompt: np.ndarray, n: int, processors=()) -> tuple[list[int], float]:
    """Greedy decoding one token per forward, the engine's loop (`choose_token`, next step
    scheduled before the host reads the token); (tokens, seconds after the first token)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import greedy_sampler

    from mlx_model.sampling import choose_token

    caches = target.make_cache()
    logits = target(mx.array(prompt[None]), cache=caches, logits_to_keep=1)
    history = mx.array(prompt) if processors else None
    y = choose_token(logits[:, -1, :], history, greedy_sampler, processors)
    tokens: list[int] = []
    start = None
    while True:
        tokens.append(int(y.item()))
        start = start or time.perf_counter()
        if len(tokens) >= n:
            return tokens, time.perf_counter() - start
        logits = target(mx.array([[tokens[-1]]]), cache=caches)
        if history is not None:
            history = mx.concatenate([history, mx.array(tokens[-1:])])
        y = choose_token(logits[:, -1, :], history, greedy_sampler, processors)
        mx.async_eval(y)


def spec_generate(
    target, mtp, prompt: np.ndarray, n: int, policy, processors=()
) -> tuple[list[int], float, dict]:
    import mlx.core as mx

    from mlx_model.speculative import SpeculativeStats, speculative_generate_step

    caches = target.make_cache()
    logits, hidden = target(
        mx.array(prompt[None]), cache=caches, return_hidden=True, logits_to_keep=1
    )
    stats = SpeculativeStats()
    tokens: list[int] = []
    start = None
    for token in speculative_generate_step(
        target, mtp, caches, logits, hidden, max_tokens=n, policy=policy, stats=stats,
        logits_processors=processors, history=prompt.tolist(),
    ):  # fmt: skip
        tokens.append(token)
        start = start or time.perf_counter()
    return tokens, time.perf_counter() - start, stats.as_dict()


def end_to_end(target, drafter, prompts: np.ndarray, n: int, processors, names) -> dict:
    from mlx_model.speculative import DraftPolicy, MTPDrafter

    mtp = MTPDrafter(drafter, target)
    policies = {
        "adaptive": DraftPolicy(max_draft=4),
        "k=1": DraftPolicy(max_draft=1, adaptive=False),
        "k=2": DraftPolicy(max_draft=2, adaptive=False),
    }
    variants = {name: policies[name] for name in names}
    spec_generate(target, mtp, prompts[0], 8, policies["k=2"], processors)  # warm-up
    plain_generate(target, prompts[0], 8, processors)
    result: dict = {"plain": {"s": 0.0, "tokens": []}}
    for name in variants:
        result[name] = {"s": 0.0, "tokens": [], "stats": []}
    for prompt in prompts:
        tokens, seconds = plain_generate(target, prompt, n, processors)
        result["plain"]["s"] += seconds
        result["plain"]["tokens"].append(tokens)
        for name, policy in variants.items():
            tokens, seconds, stats = spec_generate(target, mtp, prompt, n, policy, processors)
            result[name]["s"] += seconds
            result[name]["tokens"].append(tokens)
            result[name]["stats"].append(stats)
    decoded = (n - 1) * len(prompts)
    plain_tps = decoded / result["plain"]["s"]
    summary = {"plain_tok_s": plain_tps}
    for name in variants:
        r = result[name]
        drafted = sum(s["drafted"] for s in r["stats"])
        accepted = sum(s["accepted"] for s in r["stats"])
        rounds = sum(s["rounds"] for s in r["stats"])
        summary[name] = {
            "tok_s": decoded / r["s"],
            "speedup": decoded / r["s"] / plain_tps,
            "acceptance": accepted / drafted if drafted else 0.0,
            "accepted_per_round": accepted / rounds if rounds else 0.0,
            "plain_steps": sum(s["plain_steps"] for s in r["stats"]),
            "rounds": rounds,
            "identical": r["tokens"] == result["plain"]["tokens"],
        }
    summary["plain_tokens"] = result["plain"]["tokens"]
    return summary


def derived(costs: dict) -> dict:
    rel = costs["relative"]
    return {
        k: {
            "acceptance": rate,
            "speedup": (1 + k * rate) / (rel[f"verify{k}"] + k * rel["draft"]),
        }
        for k, rate in PUBLISHED.items()
    }


# --------------------------------------------------------------------------- peer


def worker_peer(args) -> dict:
    """mlx-vlm's plain and MTP decoding of the held-out prompts (run in a subprocess)."""
    import mlx.core as mx

    from mlx_model.testing.reference import prepare_torchvision_import

    prepare_torchvision_import()
    from mlx_vlm.generate.ar import generate_step
    from mlx_vlm.speculative.drafters import load_drafter
    from mlx_vlm.utils import load_model

    model = load_model(Path(args.target), lazy=False)
    drafter, kind = load_drafter(str(args.drafter), kind="mtp")
    prompts = np.array(json.loads(args.prompts))

    def run(prompt, **kw):
        tokens, start = [], None
        for token, _ in generate_step(
            mx.array(prompt[None]), model, None, None, max_tokens=args.decode, temperature=0.0, **kw
        ):
            tokens.append(int(token))
            start = start or time.perf_counter()
        return tokens, time.perf_counter() - start

    run(prompts[0][:8])  # warm-up
    run(prompts[0][:8], draft_model=drafter, draft_kind=kind, draft_block_size=3)
    out = {"plain": {"s": 0.0, "tokens": []}}
    blocks = {"k=1": 2, "k=2": 3}
    for name in blocks:
        out[name] = {"s": 0.0, "tokens": [], "accept_lens": []}
    for prompt in prompts:
        tokens, seconds = run(prompt)
        out["plain"]["s"] += seconds
        out["plain"]["tokens"].append(tokens)
        for name, block in blocks.items():
            if hasattr(drafter, "accept_lens"):
                drafter.accept_lens = []
            tokens, seconds = run(
                prompt, draft_model=drafter, draft_kind=kind, draft_block_size=block
            )
            out[name]["s"] += seconds
            out[name]["tokens"].append(tokens)
            out[name]["accept_lens"] += list(getattr(drafter, "accept_lens", []))
    return out


def run_peer(args, target: Path, drafter: Path, prompts: np.ndarray) -> dict | None:
    if not (PEER_SITE / "mlx_vlm").exists():
        print("mlx-vlm is not installed in .bench/peer-site: no peer figures", flush=True)
        return None
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PEER_SITE), str(ROOT)]))
    cmd = [
        sys.executable, __file__, "--worker", "peer", "--target", str(target),
        "--drafter", str(drafter), "--prompts", json.dumps(prompts.tolist()),
        "--decode", str(args.decode),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(f"mlx-vlm worker failed:\n{proc.stderr[-3000:]}", flush=True)
        return {"error": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--drafter-hidden", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens")
    parser.add_argument("--continuation", type=int, default=96, help="training continuation")
    parser.add_argument("--train-prompts", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="sequences per distillation step")
    parser.add_argument("--anchors", type=int, default=24, help="positions per sequence a step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--distill-steps", type=int, default=300)
    parser.add_argument("--distill-minutes", type=float, default=20.0, help="upper bound")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--eval-prompts", type=int, default=4)
    parser.add_argument("--decode", type=int, default=64, help="tokens per measured generation")
    parser.add_argument("--cost-rounds", type=int, default=8)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--report", type=Path, help="print the figures of an earlier --json")
    parser.add_argument("--worker", choices=["peer"], help=argparse.SUPPRESS)
    parser.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--drafter", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prompts", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.report:
        report(json.loads(args.report.read_text()), args)
        return 0
    if args.worker == "peer":
        print(json.dumps(worker_peer(args)))
        return 0

    from mlx_model.loading import load_drafter, load_model

    WORK.mkdir(parents=True, exist_ok=True)
    target_dir = make_target(args)
    target = load_model(target_dir, lazy=False)
    drafter_dir, distill_log = make_drafter(args, target_dir, target)
    drafter = load_drafter(drafter_dir, lazy=False)
    train = np.load(next(WORK.glob(f"{target_dir.name}-train-{args.train_prompts}x*.npz")))
    prompts = train["seqs"][: args.eval_prompts, : args.prompt]
    held_out = _held_out_prompts(args, target.config.text_config.vocab_size)
    print("measuring costs ...", flush=True)
    costs = measure_costs(target, drafter, prompts[0], args.cost_rounds)
    print("end to end ...", flush=True)
    e2e = end_to_end(
        target, drafter, prompts, args.decode, [no_recent_repeats], ("adaptive", "k=1", "k=2")
    )
    print("end to end, unconstrained (the peer's workload) ...", flush=True)
    e2e_copy = end_to_end(target, drafter, prompts, args.decode, [], ("k=1", "k=2"))
    print("held-out acceptance ...", flush=True)
    held_out_rate = held_out_acceptance(target, drafter, held_out, args.decode)
    print("mlx-vlm ...", flush=True)
    peer = run_peer(args, target_dir, drafter_dir, prompts)
    figures = {
        "target_params": param_count(target),
        "drafter_params": param_count(drafter),
        "distill": distill_log,
        "costs": costs,
        "end_to_end": e2e,
        "end_to_end_unconstrained": e2e_copy,
        "held_out_acceptance": held_out_rate,
        "derived": derived(costs),
        "peer": peer,
    }
    report(figures, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def report(f: dict, args) -> None:
    d = f["distill"]
    print()
    print(
        f"target {f['target_params'] / 1e6:.0f}M params (bf16), drafter {f['drafter_params'] / 1e6:.1f}M"
    )
    print(
        f"distilled: {d['steps']} steps in {d['seconds'] / 60:.1f} min on {d['sequences']} "
        f"sequences, loss {d['loss_first']:.2f} -> {d['loss_last']:.2f}"
    )
    c = f["costs"]
    print(f"(a) costs at context {c['context']}, plain step {c['plain_s'] * 1e3:.0f} ms = 1.00:")
    for k in range(1, 5):
        print(f"    verify 1+{k} tokens: {c['relative'][f'verify{k}']:.2f}")
    print(f"    drafter, per drafted token: {c['relative']['draft']:.3f}")
    for key, title in (
        ("end_to_end", f"no id of the last {RECENT} repeated (what the drafter learned)"),
        ("end_to_end_unconstrained", "plain greedy (a random target repeats one id)"),
    ):
        e = f[key]
        print(
            f"(b) end to end, {args.eval_prompts} distilled-on prompts x {args.decode} tokens, {title}:"
        )
        print(f"    plain: {e['plain_tok_s']:.2f} tok/s")
        for name in ("adaptive", "k=1", "k=2"):
            if name not in e:
                continue
            r = e[name]
            print(
                f"    {name:9s}: {r['tok_s']:.2f} tok/s = {r['speedup']:.2f}x, acceptance "
                f"{r['acceptance']:.2f}, {r['accepted_per_round']:.2f} accepted/round, "
                f"{r['rounds']} rounds, {r['plain_steps']} plain steps, identical: {r['identical']}"
            )
    print(
        f"    held-out prompts (never distilled on), k=2: acceptance {f['held_out_acceptance']:.2f}"
    )
    print("(c) derived from (a) at the published acceptance (not measured):")
    for k, r in f["derived"].items():
        print(f"    k={k}, acceptance {r['acceptance']:.2f}: {r['speedup']:.2f}x")
    p, e = f["peer"], f["end_to_end_unconstrained"]
    if p and "error" not in p:
        decoded = (args.decode - 1) * args.eval_prompts
        base = decoded / p["plain"]["s"]
        print(
            "mlx-vlm 0.7.10, plain greedy workload (its MTP loop takes no logits processors); "
            "its own process, so only its speed-ups against its own plain decoding compare:"
        )
        print(f"    plain: {base:.2f} tok/s")
        for name in ("k=1", "k=2"):
            r = p[name]
            tps = decoded / r["s"]
            lens = r["accept_lens"]
            acc = f", {statistics.mean(lens):.2f} accepted/round" if lens else ""
            same = r["tokens"] == e["plain_tokens"]
            print(
                f"    {name}: {tps:.2f} tok/s = {tps / base:.2f}x its plain{acc} "
                f"(ours on the same workload: {e[name]['speedup']:.2f}x); "
                f"tokens = our plain: {same}"
            )


if __name__ == "__main__":
    sys.exit(main())
