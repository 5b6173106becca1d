"""Benchmark (not a test): float32 precision of our network against transformers in float64.

For each prompt kind (text, images, a block longer than the window, audio, video, mixed), each
seed and both image/video attention semantics, prints the relative error of the logits of
transformers' float32 run and of ours against transformers' float64 run (`compute_in_float64`:
the exact answer for the weights), their ratio, and our argmax agreement; then the worst ratio
per kind. The suite checks a few pinned seeds on the tiny test checkpoint
(`tests/mlx_model/test_model_parity.py`); this sweeps more seeds and a wider checkpoint.

    .venv/bin/python bench/bench_precision.py --hidden 64 256 --seeds 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlx_model.testing.checkpoint_factory import (  # noqa: E402
    TinyModelSizes,
    token_ids_of,
    write_tiny_checkpoint,
)
from mlx_model.testing.reference import prepare_torchvision_import  # noqa: E402

prepare_torchvision_import()

from tests.mlx_model.conftest import (  # noqa: E402 - the suite's prompt builder and oracle
    PromptBuilder,
    argmax_agreement,
    load_our_model,
    load_reference,
    reference_logits,
    relative_error,
)
from tests.mlx_model.test_model_parity import _cases  # noqa: E402


def sweep(folder: Path, seeds: int) -> dict[tuple[str, str], list[float]]:
    ids = token_ids_of(folder)
    hf32, hf64 = load_reference(folder), load_reference(folder, "float64")
    ours = {
        "sliding_only": load_our_model(folder),
        "all_layers": load_our_model(folder, vision_overlay_mode="all_layers"),
    }
    config = ours["sliding_only"].config
    window = config.text_config.sliding_window
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    for case, build in _cases(window).items():
        for semantics, model in ours.items():
            if semantics == "all_layers" and case in ("text_only", "audio"):
                continue  # no image/video: the two semantics are the same network
            for seed in range(seeds):
                builder = PromptBuilder(
                    ids, config.vision_config.patch_dim, config.audio_config.audio_embed_dim, seed
                )
                build(builder)
                inputs = builder.build().inputs()
                exact = reference_logits(hf64, inputs, semantics=semantics)
                theirs = relative_error(reference_logits(hf32, inputs, semantics=semantics), exact)
                logits = np.array(model(**inputs)).astype(np.float64)
                err = relative_error(logits, exact)
                ratios[(case, semantics)].append(err / theirs)
                print(
                    f"{case:30s} {semantics:12s} seed {seed}: transformers-f32 {theirs:.2e} "
                    f"ours {err:.2e} ratio {err / theirs:.2f} "
                    f"argmax {argmax_agreement(logits, exact):.3f}",
                    flush=True,
                )
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    for hidden in args.hidden:
        with tempfile.TemporaryDirectory() as tmp:
            sizes = TinyModelSizes(
                hidden_size=hidden,
                intermediate_size=2 * hidden,
                head_dim=hidden // 4,
                global_head_dim=hidden // 2,
            )
            folder = write_tiny_checkpoint(Path(tmp), seed=0, dtype="float32", sizes=sizes)
            print(f"== hidden {hidden}")
            ratios = sweep(folder, args.seeds)
        print(f"== hidden {hidden}: ours/transformers-f32 error ratio, median and worst")
        for (case, semantics), values in ratios.items():
            print(f"{case:30s} {semantics:12s} {np.median(values):.2f} {max(values):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
