"""Benchmark (not a test): time to first token of turn 5 of a chat, with and without the prompt cache.

A mid-size random checkpoint (by default the sizes `bench/bench_model.py` uses, float32 because
MLX's CPU backend is slow in bf16) is written once under `.bench/prompt_cache/`. The chat: a system prompt, three earlier exchanges given as history,
a fourth user message whose reply the model generates (its ids forced to a fixed text, so
every mode sees the same tokens), then turn 5: a new ~20-token message. The history is about
`--history` tokens. Modes, each from a fresh engine, median of `--repeats`:

- cold: the prompt cache is cleared before turn 5 (everything is prefilled);
- cache (default engine): after turn 4 the reply is settled into the cache as the next
  prompt renders it (thoughts stripped), so turn 5 prefills only the new message;
- cache, no settling: turn 5 rewinds to the start of turn 4's reply (the snapshot) and
  re-prefills the reply plus the new message.

    .venv/bin/python bench/bench_prompt_cache.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from mlx_model.engine import Engine
from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' token forcing
from tests.mlx_model.forced_tokens import forced  # noqa: E402

WORDS = (
    "The quick brown fox jumps over the lazy dog. What is in this image? The weather in Paris "
    "is sunny and warm. Gemma runs locally on the Mac with MLX. Nothing leaves the machine. "
)


def checkpoint(folder: Path, args: argparse.Namespace) -> Path:
    if (folder / "config.json").is_file():
        return folder
    sizes = TinyModelSizes.in_12b_proportions(args.hidden, args.layers, args.vocab, args.window)
    return write_tiny_checkpoint(folder, seed=0, dtype=args.dtype, sizes=sizes)


def text_of(engine: Engine, tokens: int) -> str:
    """Corpus text of about `tokens` tokens."""
    text = ""
    while len(engine.tokenizer.encode(text)) < tokens:
        text += WORDS
    ids = engine.tokenizer.encode(text)[:tokens]
    return engine.tokenizer.decode(ids).strip()


def conversation(engine: Engine, history: int, reply: int) -> tuple[list[dict], str, str]:
    per_message = max(history // 8, 16)
    messages = [
        {"role": "system", "content": "You are a helpful assistant. " + text_of(engine, 40)}
    ]
    for _ in range(3):
        messages.append({"role": "user", "content": text_of(engine, per_message)})
        messages.append({"role": "assistant", "content": text_of(engine, per_message)})
    messages.append({"role": "user", "content": text_of(engine, per_message)})
    return messages, text_of(engine, reply), text_of(engine, 20)


def run_mode(path: Path, mode: str, args: argparse.Namespace) -> dict:
    engine = Engine.load(path, apply_limits=False, context_length=8192, prefill_chunk=512)
    messages, reply_text, new_message = conversation(engine, args.history, args.reply)
    script = engine.tokenizer.encode(reply_text + "<turn|>")
    settle = mode == "cache"
    turn4 = engine.generate(
        messages,
        max_tokens=len(script) + 1,
        temperature=0.0,
        settle_cache=settle,
        logits_processors=[forced(script)],  # a random model says the scripted reply
    )
    messages = [
        *messages,
        {"role": "assistant", "content": turn4.text},
        {"role": "user", "content": new_message},
    ]
    if mode == "cold":
        engine.prompt_cache.clear()
    started = time.perf_counter()
    first = None
    finished = None
    for event in engine.stream(messages, max_tokens=2, temperature=0.0, settle_cache=settle):
        if first is None and type(event).__name__ in ("TextDelta", "ThinkingDelta", "Finished"):
            first = time.perf_counter() - started
        finished = event
    stats = finished.stats
    return {
        "ttft_s": stats.ttft_s,
        "prefilled": stats.prefilled_tokens,
        "cached": stats.cached_tokens,
        "prompt_tokens": stats.prefilled_tokens + stats.cached_tokens,
        "turn4_reply_tokens": len(turn4.token_ids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--history", type=int, default=2000, help="history tokens before turn 5")
    parser.add_argument("--reply", type=int, default=100, help="tokens of turn 4's reply")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dtype", default="float32", help="float32 is far faster on MLX's CPU backend"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    name = f"ckpt-h{args.hidden}-l{args.layers}-v{args.vocab}-w{args.window}-{args.dtype}"
    path = checkpoint(Path(".bench/prompt_cache") / name, args)
    results = {}
    for mode in ("cold", "cache", "cache_no_settle"):
        runs = [run_mode(path, mode, args) for _ in range(args.repeats)]
        results[mode] = {**runs[0], "ttft_s": statistics.median(r["ttft_s"] for r in runs)}
        r = results[mode]
        print(
            f"{mode:16s} TTFT {r['ttft_s'] * 1000:8.1f} ms  prompt {r['prompt_tokens']} tokens: "
            f"prefilled {r['prefilled']}, cached {r['cached']}"
        )
    cold = results["cold"]["ttft_s"]
    for mode in ("cache", "cache_no_settle"):
        results[mode]["ratio_to_cold"] = results[mode]["ttft_s"] / cold
        print(f"{mode}: {results[mode]['ratio_to_cold']:.3f}x of cold (target <= 0.15x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
