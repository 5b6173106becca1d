"""A folder of source files as one codebase: `.gitignore` rules respected, binaries skipped.

Every `.gitignore` in the tree applies to its own folder and below (gitignore semantics via
`pathspec`); version-control and dependency folders are never read. Each remaining file that
decodes as text becomes line-ranged chunks labelled with its path; binaries, files over the
per-file limit and undecodable files are listed in `Document.skipped` with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import (
    BinaryFileError,
    DocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    format_bytes,
)
from .model import Chunk, Document, chunk_lines, line_range
from .text import decode_text, text_kind

ALWAYS_SKIPPED = {
    ".git", ".hg", ".svn", ".jj", "__pycache__", "node_modules", ".venv", "venv",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".idea", ".DS_Store",
}  # fmt: skip


@dataclass(frozen=True)
class FolderLimits:
    max_files: int = 5000
    max_file_bytes: int = 1024 * 1024
    max_total_bytes: int = 32 * 1024 * 1024


def read_folder(
    path: str | os.PathLike[str], *, name: str | None = None, limits: FolderLimits | None = None
) -> Document:
    """Read a folder as a codebase document (see the module docstring)."""
    import pathspec

    root = Path(path)
    name = name or root.name or str(root)
    limits = limits or FolderLimits()
    files: list[str] = []
    skipped: list[str] = []
    chunks: list[Chunk] = []
    listing: list[str] = []
    total = 0
    specs: list[tuple[Path, pathspec.PathSpec]] = []

    def ignored(relative: Path, is_dir: bool) -> bool:
        # The deepest .gitignore with a rule for the path decides (a `!` rule re-includes).
        for base, spec in reversed(specs):
            try:
                sub = relative.relative_to(base)
            except ValueError:
                continue
            decision = spec.check_file(sub.as_posix() + ("/" if is_dir else "")).include
            if decision is not None:
                return decision
        return False

    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root)
        gitignore = Path(dirpath) / ".gitignore"
        if gitignore.is_file():
            rules = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append((here, pathspec.GitIgnoreSpec.from_lines(rules)))
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in ALWAYS_SKIPPED
            and not (Path(dirpath) / d).is_symlink()
            and not ignored(here / d, True)
        )
        for filename in sorted(filenames):
            relative = here / filename
            rel = relative.as_posix()
            full = root / relative
            if filename in ALWAYS_SKIPPED or full.is_symlink() or ignored(relative, False):
                continue
            size = full.stat().st_size
            if size == 0:
                continue
            if size > limits.max_file_bytes:
                skipped.append(f"{rel} (larger than {format_bytes(limits.max_file_bytes)})")
                continue
            if len(files) >= limits.max_files or total + size > limits.max_total_bytes:
                raise DocumentTooLargeError(
                    f"The folder “{name}” holds more source than we take in one go (limits: "
                    f"{limits.max_files:,} files, {format_bytes(limits.max_total_bytes)}); attach a "
                    "subfolder or add the rest to .gitignore.",
                    source=str(root),
                    limit=f"{limits.max_total_bytes} bytes",
                )
            data = full.read_bytes()
            try:
                text, _ = decode_text(data, rel, str(full))
            except BinaryFileError:
                skipped.append(f"{rel} (binary)")
                continue
            except DocumentError as exc:
                skipped.append(f"{rel} ({exc})")
                continue
            total += size
            files.append(rel)
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            _, language = text_kind(full, data[:512])
            listing.append(f"{rel} ({len(lines):,} lines{', ' + language if language else ''})")
            chunks += chunk_lines(
                lines, lambda a, b, rel=rel: f"{rel}, {line_range(a, b)}", path=rel
            )
    if not files:
        raise EmptyDocumentError(
            f"The folder “{name}” has no text or source files to read"
            + (f" ({len(skipped)} skipped)." if skipped else "."),
            source=str(root),
        )
    overview = Chunk("\n".join(listing), "files")
    return Document(
        name=name,
        kind="codebase",
        chunks=[overview, *chunks],
        line_count=sum(c.lines[1] - c.lines[0] + 1 for c in chunks if c.lines),
        source=str(root),
        files=files,
        skipped=skipped,
    )
