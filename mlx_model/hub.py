"""Model names to checkpoint folders: a folder on disk, or a Hugging Face repo id in the cache.

`resolve_checkpoint("mlx-community/gemma-4-12b-it-4bit")` finds the snapshot that
huggingface_hub (and so mlx-lm, mlx-vlm, transformers) already downloaded into the
standard cache: `$HF_HUB_CACHE`, by default `$HF_HOME/hub` (`~/.cache/huggingface/hub`).
Nothing is downloaded here and no connection is made, so `HF_HUB_OFFLINE` holds trivially;
a repo that is not in the cache is a `CheckpointNotFound` that says how to get it.
`model_name(path)` is the inverse: the repo id of a cached snapshot, else the folder's
name, never a commit hash.

`find_drafter(model)` finds a model's speculative drafter (a `gemma4_unified_assistant`
checkpoint, published as `<repo>-assistant`): the folder `<model folder>-assistant` beside
it, else `<repo>-assistant` in the cache, else any cached drafter whose config says it was
made for a model of this shape.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

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


DRAFTER_MODEL_TYPE = "gemma4_unified_assistant"
DRAFTER_SUFFIX = "-assistant"


def drafter_repo(repo_id: str) -> str:
    """The repo a model's drafter is published under (`google/gemma-4-12B-it-assistant`)."""
    return repo_id + DRAFTER_SUFFIX


def find_drafter(model: str | os.PathLike[str], cache_dir: Path | None = None) -> Path | None:
    """The drafter checkpoint folder for the model at `model` (a folder or a cached repo id),
    or None. See the module docstring for where it looks; only a folder whose config.json is a
    drafter's counts, and the last resort also needs the drafter's `backbone_hidden_size`
    and vocabulary to be the model's."""
    text = os.fspath(model)
    folder = Path(text).expanduser()
    if not folder.exists() and _REPO_ID.fullmatch(text):
        folder = cached_snapshot(text, cache_dir=cache_dir) or folder
    beside = folder.resolve().with_name(folder.resolve().name + DRAFTER_SUFFIX)
    if _is_drafter(beside):
        return beside
    found = snapshot_repo(folder) or snapshot_repo(folder.resolve())
    repo = found[0] if found else (text if _REPO_ID.fullmatch(text) else None)
    if repo is not None:
        snapshot = cached_snapshot(drafter_repo(repo), cache_dir=cache_dir)
        if snapshot is not None and _is_drafter(snapshot):
            return snapshot
    target = _config(folder)
    text_config = target.get("text_config") or {}
    shape = (text_config.get("hidden_size"), text_config.get("vocab_size"))
    if None in shape:
        return None
    root = cache_dir or hub_cache_dir()
    if not root.is_dir():
        return None
    for storage in sorted(root.glob(f"models--*{DRAFTER_SUFFIX}")):
        owner_name = storage.name[len("models--") :].replace("--", "/", 1)
        snapshot = cached_snapshot(owner_name, cache_dir=root)
        if snapshot is None or not _is_drafter(snapshot):
            continue
        config = _config(snapshot)
        drafter_text = config.get("text_config") or {}
        if (config.get("backbone_hidden_size"), drafter_text.get("vocab_size")) == shape:
            return snapshot
    return None


def _is_drafter(folder: Path) -> bool:
    return folder.is_dir() and _config(folder).get("model_type") == DRAFTER_MODEL_TYPE


def _config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _case_insensitive(storage: Path) -> Path | None:
    parent = storage.parent
    if not parent.is_dir():
        return None
    wanted = storage.name.lower()
    return next((p for p in parent.iterdir() if p.name.lower() == wanted and p.is_dir()), None)
