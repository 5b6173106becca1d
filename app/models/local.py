"""Model folders on disk: validate a checkpoint folder, import one, list what is installed.

A valid folder is in the Hugging Face layout `mlx_model.load_model` reads: `config.json` of
a supported `model_type`, safetensors weights (every shard the index names present and with
a readable header), and a tokenizer (`tokenizer.json` or `tokenizer.model`; a speculative
drafter, which uses its model's, needs none). Downloads land in
`<models dir>/<owner>--<name>/`; `import_folder` registers or copies a folder the user
already has (e.g. an MLX 4-bit conversion made elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from app.models.catalog import (
    DRAFTER_MODEL_TYPES,
    SUPPORTED_MODEL_TYPES,
    CatalogEntry,
    entry_for_repo,
    quantization_of,
    read_safetensors_header,
)

DOWNLOAD_STATE_DIR = ".download"  # partial files and state of an unfinished download
COMPLETE_MARKER = "complete.json"  # written in DOWNLOAD_STATE_DIR once verified
IMPORTED_LINKS_FILE = "imported.json"  # folders imported by reference, in the models dir
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


class InvalidModelFolder(ValueError):
    """The folder is not a usable checkpoint; the message names the folder and what is wrong."""


@dataclass(frozen=True)
class LocalModel:
    """A validated checkpoint folder."""

    path: Path
    model_type: str
    stored_bits: int | None  # None = original precision
    weight_files: tuple[str, ...]
    size_bytes: int
    repo_id: str | None = None  # where it came from, when known

    @property
    def name(self) -> str:
        return self.repo_id or self.path.name

    def entry(self) -> CatalogEntry:
        """A catalog entry describing this folder (precision read from its config)."""
        config = json.loads((self.path / "config.json").read_text())
        return entry_for_repo(self.repo_id or self.path.name, config)


def validate_folder(
    path: str | os.PathLike[str], model_types: tuple[str, ...] = SUPPORTED_MODEL_TYPES
) -> LocalModel:
    """Check a checkpoint folder of one of `model_types` and describe it; raises
    `InvalidModelFolder` with the reason."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InvalidModelFolder(f"{folder} is not a folder.")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InvalidModelFolder(f"{folder} has no config.json; it is not a model checkpoint.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelFolder(f"{config_path} cannot be read: {exc}") from exc
    model_type = str(config.get("model_type", ""))
    if model_type not in model_types:
        raise InvalidModelFolder(
            f"{folder} holds a '{model_type or 'unknown'}' model; Gemma Desk runs "
            f"{', '.join(model_types)} checkpoints here."
        )
    weight_files = _weight_files(folder)
    for name in weight_files:
        try:
            read_safetensors_header(folder / name)
        except (OSError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidModelFolder(f"{folder / name} is damaged or incomplete: {exc}") from exc
    needs_tokenizer = model_type not in DRAFTER_MODEL_TYPES
    if needs_tokenizer and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise InvalidModelFolder(f"{folder} has no tokenizer ({' or '.join(TOKENIZER_FILES)}).")
    quant = quantization_of(config)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    origin = _read_origin(folder)
    return LocalModel(
        path=folder.resolve(),
        model_type=model_type,
        stored_bits=quant[0] if quant else None,
        weight_files=tuple(weight_files),
        size_bytes=size,
        repo_id=origin,
    )


def _weight_files(folder: Path) -> list[str]:
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise InvalidModelFolder(f"{index_path} cannot be read: {exc}") from exc
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise InvalidModelFolder(
                f"{folder} is incomplete: {len(missing)} weight file(s) missing ({', '.join(missing[:3])})."
            )
        return shards
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    if not files:
        raise InvalidModelFolder(f"{folder} has no .safetensors weights.")
    return files


def _read_origin(folder: Path) -> str | None:
    """The repo a folder came from: our download marker, or a Hugging Face cache snapshot."""
    from mlx_model.hub import snapshot_repo

    marker = folder / DOWNLOAD_STATE_DIR / COMPLETE_MARKER
    try:
        return json.loads(marker.read_text())["repo_id"]
    except (OSError, KeyError, ValueError):
        found = snapshot_repo(folder)
        return found[0] if found else None


def import_folder(
    path: str | os.PathLike[str], models_dir: str | os.PathLike[str], *, copy: bool = False
) -> LocalModel:
    """Validate a folder the user picked and add it to the installed models.

    By default the folder is used where it is (its path is remembered in
    `models_dir/imported.json`); with `copy=True` it is copied into `models_dir` first.
    """
    model = validate_folder(path)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    if copy:
        target = models_dir / model.path.name
        if target.exists():
            raise InvalidModelFolder(f"{target} already exists; remove it or pick another folder.")
        free = shutil.disk_usage(models_dir).free
        if free < model.size_bytes:
            raise InvalidModelFolder(
                f"Not enough disk space to copy {model.path} ({model.size_bytes / 1e9:.1f} GB needed, "
                f"{free / 1e9:.1f} GB free)."
            )
        tmp = models_dir / f".{model.path.name}.importing"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model.path, tmp, ignore=shutil.ignore_patterns(DOWNLOAD_STATE_DIR))
        os.replace(tmp, target)
        return validate_folder(target)
    links = _read_links(models_dir)
    if str(model.path) not in links:
        links.append(str(model.path))
        _write_links(models_dir, links)
    return model


def forget_import(path: str | os.PathLike[str], models_dir: str | os.PathLike[str]) -> None:
    """Remove a folder imported by reference from the list (the folder itself is left alone)."""
    models_dir = Path(models_dir)
    resolved = str(Path(path).expanduser().resolve())
    _write_links(models_dir, [p for p in _read_links(models_dir) if p != resolved])


def installed_models(models_dir: str | os.PathLike[str]) -> list[LocalModel]:
    """Every valid model: complete downloads under `models_dir` plus imported folders.

    Folders with an unfinished download (state folder without the complete marker) and
    invalid folders are skipped; imported folders that vanished are skipped too.
    """
    models_dir = Path(models_dir)
    found: list[LocalModel] = []
    candidates: list[Path] = []
    if models_dir.is_dir():
        for child in sorted(models_dir.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue
            state = child / DOWNLOAD_STATE_DIR
            if state.is_dir() and not (state / COMPLETE_MARKER).is_file():
                continue  # download in progress or interrupted
            candidates.append(child)
    candidates += [Path(p) for p in _read_links(models_dir)]
    seen: set[Path] = set()
    for folder in candidates:
        try:
            model = validate_folder(folder)
        except InvalidModelFolder:
            continue
        if model.path not in seen:
            seen.add(model.path)
            found.append(model)
    return found


def cached_models(cache_dir: str | os.PathLike[str] | None = None) -> list[LocalModel]:
    """Gemma 4 checkpoints in the Hugging Face cache (what mlx-lm, mlx-vlm or `hf download`
    fetched; `HF_HUB_CACHE` / `HF_HOME`), one per repo at the revision `main` points to,
    named by repo id. Incomplete snapshots and other models are skipped."""
    from mlx_model.hub import cached_snapshot, hub_cache_dir

    root = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    found: list[LocalModel] = []
    if not root.is_dir():
        return found
    for storage in sorted(root.iterdir()):
        if not storage.name.startswith("models--") or "--" not in storage.name[8:]:
            continue
        repo_id = storage.name[len("models--") :].replace("--", "/", 1)
        snapshot = cached_snapshot(repo_id, cache_dir=root)
        if snapshot is None or _model_type(snapshot) not in SUPPORTED_MODEL_TYPES:
            continue
        try:
            model = validate_folder(snapshot)
        except InvalidModelFolder:
            continue
        found.append(replace(model, repo_id=repo_id))
    return found


def available_models(
    models_dir: str | os.PathLike[str] | None, cache_dir: str | os.PathLike[str] | None = None
) -> list[LocalModel]:
    """Every model the app can load: its own downloads and imports, then the Hugging Face
    cache's Gemma 4 checkpoints (the model picker and `gemma-desk models` list these)."""
    models = installed_models(models_dir) if models_dir is not None else []
    seen = {m.path for m in models}
    for model in cached_models(cache_dir):
        if model.path not in seen:
            seen.add(model.path)
            models.append(model)
    return models


def _model_type(folder: Path) -> str:
    try:
        return str(
            json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
        )
    except (OSError, ValueError, AttributeError):
        return ""


def _read_links(models_dir: Path) -> list[str]:
    try:
        data = json.loads((models_dir / IMPORTED_LINKS_FILE).read_text())
        return [str(p) for p in data.get("folders", [])]
    except (OSError, ValueError, AttributeError):
        return []


def _write_links(models_dir: Path, links: list[str]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / IMPORTED_LINKS_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"folders": links}, indent=2))
    os.replace(tmp, target)
