"""What a loaded model is called, and which other names point to it.

`served_model_name(path)`: the repo id of a Hugging Face cache snapshot or of a download
the app made, else the folder's name (never a snapshot's commit hash).

`ModelAliases.for_model(path)` collects the names a client may use for the served model:
the served name, the repo id, the folder name, the family name derived from them
(`gemma-4-12b` and `gemma-4-12b-it` for `mlx-community/gemma-4-12b-it-4bit`), and any the
user configured. `resolve(requested)` matches case-insensitively, ignores an Ollama-style
`:latest` tag, and returns the served name (or None). With `accept_any`, every name
resolves to the served one (for clients that send a fixed model name).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlx_model.hub import model_name, snapshot_repo

# gemma-4-12b, gemma4-12B-it, Gemma-4-E4B...: the family, the size and an "-it" suffix.
_FAMILY = re.compile(r"gemma[-_]?(\d+)[-_]([a-z]?\d+(?:\.\d+)?b)(?:[-_](it))?", re.IGNORECASE)


def served_model_name(path: str | os.PathLike[str]) -> str:
    """The model's name for clients and lists (see the module docstring)."""
    from app.models.local import COMPLETE_MARKER, DOWNLOAD_STATE_DIR

    folder = Path(os.fspath(path)).expanduser()
    marker = folder / DOWNLOAD_STATE_DIR / COMPLETE_MARKER
    try:
        repo = json.loads(marker.read_text()).get("repo_id")
        if isinstance(repo, str) and repo:
            return repo
    except (OSError, ValueError, AttributeError):
        pass
    return model_name(path)


def family_aliases(name: str) -> list[str]:
    """`gemma-4-12b` (and `gemma-4-12b-it` for an instruction-tuned one) from a repo or folder name."""
    match = _FAMILY.search(name.split("/")[-1])
    if match is None:
        return []
    base = f"gemma-{match.group(1)}-{match.group(2).lower()}"
    return [base, f"{base}-it"] if match.group(3) else [base]


@dataclass(frozen=True)
class ModelAliases:
    """The served model's name and every other name that reaches it."""

    served: str
    names: frozenset[str]  # lower-cased, the served name included
    accept_any: bool = False

    @classmethod
    def for_model(
        cls,
        path: str | os.PathLike[str],
        *,
        served: str = "",
        extra: Iterable[str] = (),
        accept_any: bool = False,
    ) -> ModelAliases:
        """Aliases of the model at `path` (a folder, a cached snapshot or a repo id).

        `served` overrides the served name (e.g. `--model-id`); `extra` are the user's own.
        """
        name = served or served_model_name(path)
        text = os.fspath(path)
        folder = Path(text).expanduser()
        candidates = [name, served_model_name(path), folder.name]
        found = snapshot_repo(folder)
        if found is not None:
            candidates.append(found[0])
        candidates += [n.split("/")[-1] for n in list(candidates) if "/" in n]
        for known in list(candidates):
            candidates += family_aliases(known)
        candidates += [e.strip() for e in extra if e and e.strip()]
        names = frozenset(c.lower() for c in candidates if c and not _is_commit(c))
        return cls(name, names, accept_any)

    def resolve(self, requested: str | None) -> str | None:
        """The served name when `requested` is one of the aliases (or any name is accepted)."""
        if requested is None:
            return self.served if self.accept_any else None
        wanted = requested.strip().lower().removesuffix(":latest")
        if wanted in self.names or self.accept_any:
            return self.served
        return None

    def listed(self) -> list[str]:
        """Every alias (lower case) except the served name, sorted: for `/v1/models` and docs."""
        return sorted(self.names - {self.served.lower()})


def _is_commit(name: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{40}", name))
