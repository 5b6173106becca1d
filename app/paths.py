"""Where Gemma Desk keeps its data: one SQLite database file plus a content-addressed media folder.

The data folder is chosen, first match wins, from:

1. the `--data-dir` command-line flag (`add_data_dir_argument` adds it to a parser),
2. the `GEMMA_DESK_DATA_DIR` environment variable,
3. the folder the user picked in Settings (a one-line pointer file in the config folder,
   because the settings themselves live inside the data folder),
4. the platform's app-data folder (`~/Library/Application Support/Gemma Desk` on a Mac,
   `~/.local/share/gemma-desk` on Linux), from platformdirs.

The config folder holding the pointer file is itself overridable with
`GEMMA_DESK_CONFIG_DIR` (tests use it so they never touch the real home folder).

The data folder is private to the user: created 0700 (its files 0600, see
`make_private`), whatever the umask; a folder found readable by others is repaired,
with everything in it, the first time it is opened.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Gemma Desk"
APP_SLUG = "gemma-desk"
DATA_DIR_ENV = "GEMMA_DESK_DATA_DIR"
CONFIG_DIR_ENV = "GEMMA_DESK_CONFIG_DIR"
DATABASE_FILENAME = "gemma-desk.sqlite3"
MEDIA_DIRNAME = "media"
DATA_DIR_POINTER_FILENAME = "data-dir"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private(path: str | os.PathLike[str]) -> None:
    """Make `path` readable by its owner only: folders 0700, files 0600 (POSIX; links skipped)."""
    if os.name != "posix":
        return
    path = Path(path)
    try:
        if path.is_symlink():
            return
        mode = PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError:  # not ours, or gone: the caller's own checks report real problems
        pass


def is_private(path: str | os.PathLike[str]) -> bool:
    """True when neither group nor others have any access to `path` (always True off POSIX)."""
    return os.name != "posix" or Path(path).stat().st_mode & 0o077 == 0


def _app_dir_name() -> str:
    # Mac convention: "Application Support/Gemma Desk"; elsewhere a lowercase slug.
    return APP_NAME if sys.platform == "darwin" else APP_SLUG


def default_data_dir() -> Path:
    """The platform's per-user app-data folder for Gemma Desk (not created)."""
    return Path(platformdirs.user_data_dir(_app_dir_name(), appauthor=False))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The small per-user config folder that holds the data-folder pointer (not created)."""
    env = os.environ if env is None else env
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV]).expanduser()
    return Path(platformdirs.user_config_dir(_app_dir_name(), appauthor=False))


def preferred_data_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The data folder the user picked in Settings, or None when they never picked one."""
    pointer = config_dir(env) / DATA_DIR_POINTER_FILENAME
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Path(text).expanduser() if text else None


def set_preferred_data_dir(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> None:
    """Remember (or with None forget) the user's data folder; takes effect at the next start."""
    pointer = config_dir(env) / DATA_DIR_POINTER_FILENAME
    if path is None:
        pointer.unlink(missing_ok=True)
        return
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(str(Path(path).expanduser().resolve()) + "\n", encoding="utf-8")
    os.replace(tmp, pointer)


def resolve_data_dir(
    cli_value: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """The data folder to use: CLI flag, then environment variable, then Settings, then default."""
    env = os.environ if env is None else env
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser().resolve()
    return preferred_data_dir(env) or default_data_dir()


@dataclass(frozen=True)
class DataPaths:
    """The files of one data folder: `root/gemma-desk.sqlite3` and `root/media/`."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / DATABASE_FILENAME

    @property
    def media(self) -> Path:
        return self.root / MEDIA_DIRNAME

    def ensure(self) -> DataPaths:
        """Create the folders (not the database), private to the user; raise a clear error
        if that is impossible. An existing folder others could read is repaired, contents included."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
            was_private = is_private(self.root)
            make_private(self.root)
            self.media.mkdir(exist_ok=True, mode=PRIVATE_DIR_MODE)
        except OSError as exc:
            raise DataDirError(
                f"Cannot create the data folder {self.root}: {exc.strerror or exc}"
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise DataDirError(f"The data folder {self.root} is not writable.")
        if not was_private:  # written by an older version, under a permissive umask
            for path in self.root.rglob("*"):
                make_private(path)
        make_private(self.media)
        return self


class DataDirError(RuntimeError):
    """The data folder cannot be created or written; the message names the folder."""


def data_paths(
    cli_value: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> DataPaths:
    """Resolve the data folder (see module docstring) and create it."""
    return DataPaths(resolve_data_dir(cli_value, env)).ensure()


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--data-dir PATH` to a subcommand's parser (read it back with `data_paths(args.data_dir)`)."""
    parser.add_argument(
        "--data-dir",
        metavar="PATH",
        default=None,
        help=f"folder holding the conversations database and media (default: ${DATA_DIR_ENV} "
        f"or {default_data_dir()})",
    )
