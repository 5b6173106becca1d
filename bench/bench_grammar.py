"""Benchmark (not a test): the per-token cost of a grammar mask, against unconstrained decoding.

One run, one random checkpoint with the 12B's vocabulary size (read from the reference
config that ships with `mlx_model`; the rest of the network is small so the CPU backend
finishes in a minute or two), written once under `.bench/grammar/`:

- decode: the engine's token loop (`mlx_model.generate.decode`, which starts each forward
  pass before the logits processors run, so the mask's host work overlaps it), `--tokens`
  tokens at temperature 1, unconstrained and constrained by a JSON schema (an array of
  `--items` objects with an integer, an enum, a bounded string and a boolean, long enough
  that the grammar is still open at the end), and constrained in a serial loop (the mask
  computed before the forward starts, the wiring before the overlap), `--rounds` rounds
  in a rotating order; ms/token (median) and the ratios to unconstrained;
- the mask alone: the constrained run's ids replayed through a fresh `TokenConstraint`
  (consume one id and compute the next bitmask, llguidance on one core) and
  `apply_token_mask` on a `[1, vocab]` logits row (MLX), µs/token, median and p99;
- one-off costs: building the grammar vocabulary, compiling the schema.

`--tokenizer FOLDER` measures the mask alone with a real checkpoint's tokenizer instead
(e.g. a downloaded Gemma 4; only tokenizer files are read).

    .venv/bin/python bench/bench_grammar.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_model.constrained import GrammarVocabulary, OutputConstraint, apply_token_mask
from mlx_model.generate import decode as decode_loop
from mlx_model.loading import load_model
from mlx_model.processing import Processor
from mlx_model.processing.tokenizer import Tokenizer
from mlx_model.sampling import SamplingOptions, choose_token, make_token_sampler

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "grammar"
REFERENCE_CONFIG = ROOT / "mlx_model" / "reference_configs" / "gemma-4-12B-it.config.json"


def schema(items: int) -> dict:
    item = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 99999},
            "kind": {"enum": ["fruit", "vegetable", "grain"]},
            "name": {"type": "string", "maxLength": 24},
            "fresh": {"type": "boolean"},
        },
        "required": ["id", "kind", "name", "fresh"],
    }
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": item, "minItems": items}},
        "required": ["items"],
    }


def checkpoint(args: argparse.Namespace) -> Path:
    from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

    folder = WORK / f"ckpt-h{args.hidden}-l{args.layers}-v{args.vocab}"
    if not (folder / "config.json").is_file():
        print(f"writing the random checkpoint to {folder} ...", flush=True)
        sizes = TinyModelSizes.in_12b_proportions(args.hidden, args.layers, args.vocab, 128)
        write_tiny_checkpoint(folder, seed=0, dtype="float32", sizes=sizes)
    return folder


def decode(
    model, prompt: list[int], tokens: int, processors: list, seed: int, *, serial: bool = False
) -> tuple[float, list[int]]:
    """Seconds per token over `tokens` decode steps (after the prefill) and the ids chosen.

    The engine's token loop (`mlx_model.generate.decode`: the forward pass starts before
    the processors run, so the grammar's host work overlaps it), or with `serial` the
    loop as it was before that wiring (the mask computed before the forward is started).
    """
    mx.random.seed(seed)
    sampler, _ = make_token_sampler(SamplingOptions(temperature=1.0, top_p=1.0, top_k=0))
    cache = model.make_cache()
    logits = model(mx.array([prompt], dtype=mx.int32), cache=cache, logits_to_keep=1)
    mx.eval(logits)
    if serial:
        return _serial_decode(model, cache, logits, prompt, tokens, sampler, processors)
    chosen: list[int] = []
    started = 0.0
    steps = decode_loop(
        model, cache, logits, sampler=sampler, logits_processors=processors,
        history=prompt, max_tokens=tokens + 1,
    )  # fmt: skip
    for token in steps:
        if not chosen:
            started = time.perf_counter()  # the first id comes from the prefill's logits
        chosen.append(token)
    return (time.perf_counter() - started) / tokens, chosen


def _serial_decode(model, cache, logits, prompt, tokens, sampler, processors):
    history = mx.array(prompt, dtype=mx.int32) if processors else None
    y = choose_token(logits[:, -1, :], history, sampler, processors)
    mx.eval(y)
    chosen: list[int] = []
    started = time.perf_counter()
    for _ in range(tokens):
        token = int(y.item())
        chosen.append(token)
        logits = model(mx.array([[token]], dtype=mx.int32), cache=cache)
        if history is not None:
            history = mx.concatenate([history, mx.array([token], dtype=mx.int32)])
        y = choose_token(logits[:, -1, :], history, sampler, processors)
        mx.async_eval(y)
    mx.eval(y)
    return (time.perf_counter() - started) / tokens, chosen


def mask_costs(vocabulary: GrammarVocabulary, constraint: OutputConstraint, ids: list[int]) -> dict:
    """Per-token µs of consume + next mask (llguidance) and of applying it (MLX)."""
    state = vocabulary.constraint(constraint)
    compute = []
    masks = []
    for token in ids:
        t0 = time.perf_counter()
        mask = state.next_mask()
        compute.append(time.perf_counter() - t0)
        masks.append(mask)
        t0 = time.perf_counter()
        state.advance(token)
        compute[-1] += time.perf_counter() - t0
    logits = mx.random.normal((1, vocabulary.vocab_size))
    mx.eval(logits)
    apply = []
    for mask in masks:
        t0 = time.perf_counter()
        mx.eval(apply_token_mask(logits, mask))
        apply.append(time.perf_counter() - t0)
    return {"compute_us": _stats(compute), "apply_us": _stats(apply)}


def replayable_ids(
    vocabulary: GrammarVocabulary, constraint: OutputConstraint, tokens: int, seed: int
) -> list[int]:
    """A random walk through the grammar (for a tokenizer without a model)."""
    rng = np.random.default_rng(seed)
    state = vocabulary.constraint(constraint)
    out = []
    for _ in range(tokens):
        bits = np.unpackbits(state.next_mask().view(np.uint8), bitorder="little")[
            : vocabulary.vocab_size
        ]
        allowed = np.flatnonzero(bits)
        token = int(rng.choice(allowed))
        state.advance(token)
        out.append(token)
        if state.is_complete:
            break
    return out


def _stats(seconds: list[float]) -> dict:
    us = sorted(s * 1e6 for s in seconds)
    return {
        "median": statistics.median(us),
        "p99": us[min(len(us) - 1, int(len(us) * 0.99))],
        "mean": statistics.fmean(us),
    }


def main() -> None:
    reference_vocab = json.loads(REFERENCE_CONFIG.read_text())["text_config"]["vocab_size"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=reference_vocab)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--items", type=int, default=60, help="minItems of the schema's array")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--tokenizer", type=Path, help="a checkpoint folder: mask costs with its tokenizer"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    constraint = OutputConstraint.json_schema(schema(args.items))
    results: dict = {}

    if args.tokenizer is not None:
        tokenizer = Tokenizer.from_pretrained(args.tokenizer)
        t0 = time.perf_counter()
        vocabulary = GrammarVocabulary(tokenizer, tokenizer.vocab_size)
        results["vocabulary_s"] = time.perf_counter() - t0
        ids = replayable_ids(vocabulary, constraint, args.tokens, seed=0)
        results["mask"] = mask_costs(vocabulary, constraint, ids)
        results["vocab"] = tokenizer.vocab_size
        _print_mask(results, len(ids))
    else:
        path = checkpoint(args)
        model = load_model(path, lazy=False)
        processor = Processor.from_pretrained(path)
        vocab = model.config.text_config.vocab_size
        t0 = time.perf_counter()
        vocabulary = GrammarVocabulary(processor.tokenizer, vocab)
        results["vocabulary_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        vocabulary.matcher(constraint)
        results["compile_s"] = time.perf_counter() - t0
        prompt = (
            processor.apply_chat_template(
                [{"role": "user", "content": "List some groceries as JSON."}]
            )["input_ids"]
            .reshape(-1)
            .tolist()
        )
        decode(model, prompt, 8, [], seed=0)  # warm-up
        free, constrained, serial, ids = [], [], [], []
        for r in range(args.rounds):
            # The order rotates each round: on a shared machine, a fixed order biases one variant.
            for variant in ("free", "overlap", "serial")[r % 3 :] + ("free", "overlap", "serial")[
                : r % 3
            ]:
                if variant == "free":
                    free.append(decode(model, prompt, args.tokens, [], seed=r)[0])
                    continue
                state = vocabulary.constraint(constraint)
                processors = [state.logits_processor()]
                seconds, chosen = decode(
                    model, prompt, args.tokens, processors, seed=r, serial=variant == "serial"
                )
                assert not state.is_complete, "raise --items: the grammar closed inside the run"
                if variant == "serial":
                    serial.append(seconds)
                else:
                    constrained.append(seconds)
                    ids = chosen
        results.update(
            vocab=vocab,
            unconstrained_ms=statistics.median(free) * 1e3,
            constrained_ms=statistics.median(constrained) * 1e3,
            serial_ms=statistics.median(serial) * 1e3,
        )
        results["ratio"] = results["constrained_ms"] / results["unconstrained_ms"]
        results["serial_ratio"] = results["serial_ms"] / results["unconstrained_ms"]
        results["mask"] = mask_costs(vocabulary, constraint, ids)
        print(
            f"decode, vocab {vocab:,}, hidden {args.hidden}, {args.layers} layers, "
            f"{args.tokens} tokens x {args.rounds} rounds (median):"
        )
        print(f"  unconstrained  {results['unconstrained_ms']:8.2f} ms/token")
        print(
            f"  JSON schema    {results['constrained_ms']:8.2f} ms/token  "
            f"({results['ratio']:.3f}x, +{results['constrained_ms'] - results['unconstrained_ms']:.2f} ms)"
        )
        print(
            f"  same, serial   {results['serial_ms']:8.2f} ms/token  "
            f"({results['serial_ratio']:.3f}x: the mask before the forward starts, as before)"
        )
        print(
            f"  one-off: vocabulary {results['vocabulary_s']:.2f} s, schema compile {results['compile_s'] * 1e3:.1f} ms"
        )
        _print_mask(results, len(ids))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _print_mask(results: dict, count: int) -> None:
    m = results["mask"]
    print(f"mask alone over {count} ids (vocab {results['vocab']:,}):")
    for key, label in (
        ("compute_us", "consume + compute (llguidance)"),
        ("apply_us", "apply to logits (MLX)"),
    ):
        s = m[key]
        print(
            f"  {label:32s} median {s['median']:7.1f} µs  p99 {s['p99']:7.1f} µs  mean {s['mean']:7.1f} µs"
        )


if __name__ == "__main__":
    main()
