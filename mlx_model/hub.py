"""Model names to checkpoint folders: a folder on disk, or a Hugging Face repo id in the cache.

`resolve_checkpoint("mlx-community/gemma-4-12b-it-4bit")` finds the snapshot that
huggingface_hub (and so mlx-lm, mlx-vlm, transformers) already downloaded into the
standard cache: `$HF_HUB_CACHE`, by default `$HF_HOME/hub` (`~/.cache/huggingface/hub`).
Nothing is downloaded here and no connection is made, so `HF_HUB_OFFLINE` holds trivially;
a repo that is not in the cache is a `CheckpointNotFound` that says how to get it.
`model_name(path)` is the inverse: the repo id of a cached snapshot, else the folder's
name, never a commit hash.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# owner/name as the hub spells them (letters, digits, -, _, .), not a relative path.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


class CheckpointNotFound(FileNotFoundError):
    """A model name that is neither a folder nor a repo id in the Hugging Face cache."""


def hub_cache_dir() -> Path:
    """The standard Hugging Face cache (honours `HF_HUB_CACHE` and `HF_HOME`, read now)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def is_repo_id(name: str) -> bool:
    """True for `owner/name` that does not exist as a path here."""
    return bool(_REPO_ID.fullmatch(name)) and not Path(name).expanduser().exists()


def repo_storage_dir(repo_id: str, cache_dir: Path | None = None) -> Path:
    """`<cache>/models--owner--name`: where huggingface_hub keeps one model repo."""
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def cached_snapshot(
    repo_id: str, revision: str | None = None, cache_dir: Path | None = None
) -> Path | None:
    """The cached snapshot folder of `repo_id` at `revision` (default: what `main` points to).

    Repo names match case-insensitively, as on the hub. Without a `main` ref, the most
    recently written snapshot that has a `config.json` is taken. None when not cached.
    """
    storage = repo_storage_dir(repo_id, cache_dir)
    if not storage.is_dir():
        storage = _case_insensitive(storage)
        if storage is None:
            return None
    snapshots = storage / "snapshots"
    if revision is not None and _COMMIT.fullmatch(revision):
        folder = snapshots / revision
        return folder if folder.is_dir() else None
    ref = storage / "refs" / (revision or "main")
    if ref.is_file():
        folder = snapshots / ref.read_text().strip()
        return folder if folder.is_dir() else None
    if revision is not None or not snapshots.is_dir():
        return None
    candidates = [s for s in snapshots.iterdir() if (s / "config.json").exists()]
    return max(candidates, key=lambda s: s.stat().st_mtime, default=None)


def resolve_checkpoint(name: str | os.PathLike[str], revision: str | None = None) -> Path:
    """The checkpoint folder a model name means: an existing path, or a cached repo snapshot.

    `revision` (a branch, tag or commit) applies to repo ids. Raises `CheckpointNotFound`
    with a message for the user.
    """
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointNotFound(f"{path} is a file; a model is a folder with config.json.")
        return path
    if not _REPO_ID.fullmatch(text):
        raise CheckpointNotFound(
            f"{text}: no such model folder (give a folder, or a Hugging Face repo id owner/name "
            "that is in the cache)."
        )
    snapshot = cached_snapshot(text, revision)
    if snapshot is None:
        at = f" at {revision}" if revision else ""
        raise CheckpointNotFound(
            f"{text}{at} is neither a folder here nor in the Hugging Face cache "
            f"({hub_cache_dir()}). Download it first (`gemma-desk models --download {text}`, "
            f"or `hf download {text}`)."
        )
    return snapshot


def snapshot_repo(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(repo id, commit) when `path` is a snapshot folder in a Hugging Face cache layout."""
    folder = Path(path)
    if folder.parent.name != "snapshots":
        return None
    storage = folder.parent.parent.name
    if not storage.startswith("models--"):
        return None
    owner_name = storage[len("models--") :].split("--", 1)
    if len(owner_name) != 2:
        return None
    return "/".join(owner_name), folder.name


def model_name(path: str | os.PathLike[str]) -> str:
    """The name a model goes by: its repo id for a cached snapshot, else the folder's name;
    a repo id given as the name stays as it is."""
    text = os.fspath(path)
    if _REPO_ID.fullmatch(text) and not Path(text).expanduser().exists():
        return text
    folder = Path(text).expanduser()
    found = snapshot_repo(folder) or snapshot_repo(folder.resolve())
    if found is not None:
        return found[0]
    return folder.resolve().name if folder.name in ("", ".", "..") else folder.name


def _case_insensitive(storage: Path) -> Path | None:
    parent = storage.parent
    if not parent.is_dir():
        return None
    wanted = storage.name.lower()
    return next((p for p in parent.iterdir() if p.name.lower() == wanted and p.is_dir()), None)
