"""Fixtures for the packaging tests: the PyInstaller spec run under recording stand-ins.

`run_spec(platform)` executes packaging/gemma_desk.spec the way PyInstaller does (with
`SPECPATH` and the build classes as globals) but with stand-ins that record their arguments,
so the tests read what a build on that platform would get without building anything.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "gemma_desk.spec"

# Files PyInstaller's hooks add to a build; the spec decides which of them ship.
HOOK_DATAS = [
    ("torch-2.13.0.dist-info/METADATA", "/site/torch-2.13.0.dist-info/METADATA", "DATA"),
    ("pytest_timeout-2.4.0.dist-info/METADATA", "/site/pytest_timeout/METADATA", "DATA"),
    ("numpy-2.4.6.dist-info/METADATA", "/site/numpy-2.4.6.dist-info/METADATA", "DATA"),
    ("PySide6/Qt/translations/qtbase_de.qm", "/site/PySide6/Qt/translations/qtbase_de.qm", "DATA"),
    ("PySide6/Qt/plugins/platforms/libqxcb.so", "/site/PySide6/libqxcb.so", "BINARY"),
]


@dataclass
class SpecRun:
    """What the spec handed to each PyInstaller build step."""

    calls: dict[str, list[tuple[tuple, dict]]] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)

    def kwargs(self, step: str) -> dict[str, Any]:
        ((_, kwargs),) = self.calls[step]
        return kwargs

    def args(self, step: str) -> tuple:
        ((args, _),) = self.calls[step]
        return args


def _recording_step(run: SpecRun, name: str) -> type:
    class Step:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            run.calls.setdefault(name, []).append((args, kwargs))
            self.pure, self.scripts, self.binaries, self.datas = [], [], [], []
            if name == "Analysis":  # PyInstaller's TOC form: (destination, source, kind)
                given = [(dest, source, "DATA") for source, dest in kwargs["datas"]]
                self.datas = [*given, *HOOK_DATAS]

    Step.__name__ = name
    return Step


def _hooks_module() -> types.ModuleType:
    hooks = types.ModuleType("PyInstaller.utils.hooks")

    def collect_submodules(package: str, filter: Callable[[str], bool] | None = None) -> list[str]:
        found = [package, f"{package}.submodule", f"{package}.testing.reference"]
        return [name for name in found if filter is None or filter(name)]

    hooks.collect_submodules = collect_submodules
    hooks.collect_data_files = lambda package, includes=None: []
    hooks.collect_dynamic_libs = lambda package: []
    hooks.copy_metadata = lambda name: [(f"/site/{name}.dist-info", f"{name}.dist-info")]
    return hooks


@pytest.fixture
def run_spec(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], SpecRun]:
    """Run the spec as PyInstaller would on `platform` ("darwin" or "linux")."""

    def run(platform: str) -> SpecRun:
        result = SpecRun()
        for name in ("PyInstaller", "PyInstaller.utils"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", _hooks_module())
        monkeypatch.setattr(sys, "platform", platform)
        namespace = {"__file__": str(SPEC), "SPECPATH": str(SPEC.parent)}
        for step in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"):
            namespace[step] = _recording_step(result, step)
        exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
        result.namespace = namespace
        return result

    return run
