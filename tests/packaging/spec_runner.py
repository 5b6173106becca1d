"""Run packaging/gemma_desk.spec under recording stand-ins for PyInstaller's build steps.

`run_spec(platform)` executes the spec as PyInstaller does (with `SPECPATH` and the build
classes as globals), but each step only records its arguments and the hook functions return
small fixed lists, so the packaging tests (and the macOS dry run's stand-in PyInstaller) read
what a build on that platform would get without building anything.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

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
    """What the spec handed to each PyInstaller build step, and its globals afterwards."""

    calls: dict[str, list[tuple[tuple, dict]]] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)

    def kwargs(self, step: str) -> dict[str, Any]:
        ((_, kwargs),) = self.calls[step]
        return kwargs


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
    return hooks


@contextlib.contextmanager
def _stand_in_pyinstaller(platform: str) -> Iterator[None]:
    saved_modules = {name: sys.modules.get(name) for name in _STAND_IN_MODULES}
    saved_platform = sys.platform
    for name in _STAND_IN_MODULES[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["PyInstaller.utils.hooks"] = _hooks_module()
    sys.platform = platform
    try:
        yield
    finally:
        sys.platform = saved_platform
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


_STAND_IN_MODULES = ("PyInstaller", "PyInstaller.utils", "PyInstaller.utils.hooks")


def run_spec(platform: str, spec: Path = ROOT / "packaging" / "gemma_desk.spec") -> SpecRun:
    """Run `spec` as PyInstaller would on `platform` ("darwin" or "linux")."""
    result = SpecRun()
    namespace: dict[str, Any] = {"__file__": str(spec), "SPECPATH": str(spec.parent)}
    for step in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"):
        namespace[step] = _recording_step(result, step)
    with _stand_in_pyinstaller(platform):
        exec(compile(spec.read_text(encoding="utf-8"), str(spec), "exec"), namespace)
    result.namespace = namespace
    return result
