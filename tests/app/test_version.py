"""The app's version: one source (pyproject.toml), shown by `gemma-desk --version`."""

from __future__ import annotations

import importlib.util
import shutil
import tomllib
from importlib import metadata
from pathlib import Path

from app.cli import main
from app.version import version

ROOT = Path(__file__).resolve().parents[2]


def pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def load_copy(folder: Path):
    """app/version.py loaded from `folder`, away from the checkout's pyproject.toml."""
    target = folder / "app" / "version.py"
    target.parent.mkdir(parents=True)
    shutil.copy(ROOT / "app" / "version.py", target)
    spec = importlib.util.spec_from_file_location("version_copy", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_is_the_one_in_pyproject():
    assert version() == pyproject_version()


def test_dash_dash_version_prints_the_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gemma-desk {pyproject_version()}"


def test_outside_a_checkout_the_installed_metadata_gives_the_version(tmp_path, monkeypatch):
    monkeypatch.setattr(metadata, "version", lambda name: "9.8.7" if name == "gemma-desk" else "")
    assert load_copy(tmp_path).version() == "9.8.7"


def test_another_projects_pyproject_beside_the_package_is_ignored(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "5.0"\n')
    monkeypatch.setattr(metadata, "version", lambda name: "1.2.3")
    assert load_copy(tmp_path).version() == "1.2.3"


def test_without_metadata_the_version_says_it_is_unknown(tmp_path, monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    module = load_copy(tmp_path)
    assert module.version() == module.UNKNOWN
