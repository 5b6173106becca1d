"""`gemma-desk plan`: print the memory plan for a checkpoint (or the 12B reference config),
with the speculative drafter that loading it would use (`--draft-model`, `--no-draft`)."""

from __future__ import annotations

import argparse
import sys

from mlx_model.config import ConfigError, read_checkpoint_config
from mlx_model.errors import MemoryPlanError
from mlx_model.memory_plan import (
    DEFAULT_PREFILL_CHUNK,
    GB,
    drafter_nbytes,
    instantiate_lazily,
    parse_context,
    plan_memory,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="checkpoint folder or Hugging Face repo id in the local cache "
        "(default: the built-in Gemma 4 12B reference config)",
    )
    parser.add_argument(
        "--bits",
        type=int,
        default=4,
        choices=[4, 8, 16],
        help="weight precision (16 = keep the float weights); default 4",
    )
    parser.add_argument("--group-size", type=int, default=64, choices=[32, 64, 128])
    parser.add_argument("--embedding-bits", type=int, choices=[4, 5, 6, 8], help="mixed precision")
    parser.add_argument(
        "--context", action="append", type=parse_context, help="context length, e.g. 8K; repeatable"
    )
    parser.add_argument("--kv-bits", type=int, choices=[4, 8], help="quantize the full layers' KV")
    parser.add_argument(
        "--budget-gb", type=float, help="device budget in GB (default: this device)"
    )
    parser.add_argument("--prefill-chunk", type=int, default=DEFAULT_PREFILL_CHUNK)
    parser.add_argument(
        "--backend",
        choices=["metal", "cpu"],
        help="whose attention kernels to count (default: this machine's; 'metal' plans a Mac)",
    )
    draft = parser.add_mutually_exclusive_group()
    draft.add_argument(
        "--draft-model", metavar="PATH|REPO",
        help="count this speculative drafter (default: the one loading would find beside the "
        "checkpoint or in the cache)",
    )  # fmt: skip
    draft.add_argument("--no-draft", action="store_true", help="plan without a drafter")


def run(args: argparse.Namespace) -> int:
    from mlx_model.hub import CheckpointNotFound, find_drafter, resolve_checkpoint

    try:
        folder = None if args.checkpoint is None else resolve_checkpoint(args.checkpoint)
        config, dtype_bytes, what = read_checkpoint_config(folder)
        drafter = None
        if args.draft_model:
            drafter = resolve_checkpoint(args.draft_model)
        elif folder is not None and not args.no_draft:
            drafter = find_drafter(folder)
        extra = drafter_nbytes(drafter, dtype_bytes=dtype_bytes) if drafter is not None else 0
    except (CheckpointNotFound, ConfigError) as exc:
        print(f"gemma-desk plan: {exc}", file=sys.stderr)
        return 2
    if folder is not None and str(folder) != str(args.checkpoint):
        what = f"{args.checkpoint} ({folder})"
    model = instantiate_lazily(config)
    budget = int(args.budget_gb * GB) if args.budget_gb else None
    bits = None if args.bits == 16 else args.bits
    contexts = args.context or [8192]
    print(f"memory plan for {what}" + (f" with the drafter {drafter}" if drafter else ""))
    status = 0
    for context in contexts:
        print()
        try:
            plan = plan_memory(
                config,
                bits=bits,
                context_length=context,
                kv_bits=args.kv_bits,
                device_budget_bytes=budget,
                group_size=args.group_size,
                embedding_bits=args.embedding_bits,
                dtype_bytes=dtype_bytes,
                prefill_chunk=args.prefill_chunk,
                model=model,
                backend=args.backend,
                drafter_bytes=extra,
            )
            print(plan.describe())
        except MemoryPlanError as exc:
            print(exc.plan.describe())
            print(f"error: {exc}")
            status = 1
        except ValueError as exc:
            print(f"error: {exc}")
            status = 2
    return status
