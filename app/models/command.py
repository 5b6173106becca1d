"""`gemma-desk models`: list the models the app can load, or download one into the HF cache.

Listed: the app's own downloads and imported folders, then the Gemma 4 checkpoints in the
Hugging Face cache (what mlx-lm, mlx-vlm or `hf download` fetched). Each is named as the
server and the GUI name it (repo id or folder name); any of these names works as `--model`.
`--download REPO` fetches a repo into the Hugging Face cache (resumable: run it again after
an interruption), so other tools see it too; a catalog model's assistant (the drafter that
makes answers faster) comes with it unless `--no-assistant`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.paths import add_data_dir_argument, resolve_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per model")
    parser.add_argument(
        "--download", metavar="REPO", help="download a Hugging Face repo into the standard cache"
    )
    parser.add_argument("--revision", default="main", help="branch, tag or commit (--download)")
    parser.add_argument(
        "--no-assistant",
        action="store_true",
        help="with --download: leave out the model's assistant (the drafter for faster answers)",
    )
    add_data_dir_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.download:
        return _download(args.download, args.revision, not args.no_assistant)
    from app.models.download import default_models_dir
    from app.models.local import available_models
    from mlx_model.hub import hub_cache_dir

    models = available_models(default_models_dir(resolve_data_dir(args.data_dir)))
    if args.json:
        for model in models:
            print(json.dumps(_describe(model)))
        return 0
    if not models:
        print(
            f"No Gemma 4 models found in the app's folder or the Hugging Face cache "
            f"({hub_cache_dir()}). Download one: gemma-desk models --download REPO"
        )
        return 0
    rows = [_describe(m) for m in models]
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name'].ljust(width)}  {r['precision']:>9}  {r['size_gb']:6.1f} GB  {r['path']}")
    return 0


def _describe(model: Any) -> dict[str, Any]:
    from app.models.names import served_model_name

    bits = model.stored_bits
    return {
        "name": served_model_name(model.path),
        "path": str(model.path),
        "repo_id": model.repo_id,
        "precision": f"{bits}-bit" if bits else "original",
        "size_gb": round(model.size_bytes / 1e9, 2),
    }


def _download(repo_id: str, revision: str, with_assistant: bool = True) -> int:
    from app.models.catalog import assistant_entry, entry_for_repo, find_entry
    from app.models.download import DownloadError, DownloadProgress, DownloadRetrying
    from app.models.hub_download import HubCacheDownloader

    entry = find_entry(repo_id) or entry_for_repo(repo_id, revision=revision)
    if revision != entry.revision:
        from dataclasses import replace

        entry = replace(entry, revision=revision)
    tty = sys.stderr.isatty()

    def on_event(event: Any) -> None:
        if isinstance(event, DownloadProgress) and tty:
            sys.stderr.write(
                f"\r{event.done_bytes / 1e9:6.2f} / {event.total_bytes / 1e9:.2f} GB  "
                f"{event.speed_bps / 1e6:6.1f} MB/s  {event.file[:40]:40s}"
            )
        elif isinstance(event, DownloadRetrying):
            sys.stderr.write(f"\n{event.file}: {event.reason}; retrying in {event.delay_s:.0f} s\n")

    assistant = assistant_entry(entry) if with_assistant else None
    for part in [entry, assistant] if assistant is not None else [entry]:
        downloader = HubCacheDownloader(part, on_event=on_event, progress_interval_s=0.5)
        try:
            model = downloader.run()
        except DownloadError as exc:
            print(f"\ngemma-desk models: {part.repo_id}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            downloader.cancel()
            print("\nInterrupted; run the same command again to resume.", file=sys.stderr)
            return 130
        if tty:
            sys.stderr.write("\n")
        print(f"{part.repo_id} is in the Hugging Face cache at {model.path}")
    return 0
