"""The app's version, from pyproject.toml: read there in a source checkout and in the frozen app
(which carries the file beside the packages), from the installed distribution's metadata
otherwise (a wheel)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "gemma-desk"
UNKNOWN = "0+unknown"


@cache
def version() -> str:
    """The version string, e.g. "0.1.0" (`UNKNOWN` when neither source is there)."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == DISTRIBUTION and "version" in project:
            return str(project["version"])
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
