"""What the spec leaves out of the frozen app is never imported by the app.

A fresh interpreter hides every module the spec excludes (as if absent, the way the frozen
app sees them), then imports every module our code imports anywhere (module level or inside
functions). An import that fails for want of an excluded module would fail in the frozen app.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"mlx_model.testing.reference", "app.__main__"}

PROBE = """
import importlib, json, sys
from importlib.machinery import PathFinder

excluded, names = json.loads(sys.stdin.read())

def hidden(name):
    return any(name == e or name.startswith(e + ".") for e in excluded)

class HidingFinder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        return None if hidden(name) else PathFinder.find_spec(name, path, target)

    invalidate_caches = PathFinder.invalidate_caches
    find_distributions = PathFinder.find_distributions

sys.meta_path = [HidingFinder if f is PathFinder else f for f in sys.meta_path]
needs = {}
for name in names:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and hidden(exc.name):
            needs[name] = exc.name
    except Exception:
        pass  # a platform's own module (this is about the spec's exclusions only)
print(json.dumps({"needs": needs, "loaded": sorted(sys.modules)}))
"""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names() -> set[str]:
    """Every absolute module name imported anywhere in app/, ui/ and mlx_model/."""
    names: set[str] = set()
    for package in ("app", "ui", "mlx_model"):
        for path in (ROOT / package).rglob("*.py"):
            module = module_name(path)
            if module in NOT_SHIPPED:
                continue
            names.add(module)
            package_parts = (
                module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            )
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = (
                        package_parts[: len(package_parts) - node.level + 1] if node.level else []
                    )
                    target = ".".join([*base, *([node.module] if node.module else [])])
                    if target and target != "__future__":
                        names.add(target)
    return names - NOT_SHIPPED


@pytest.mark.slow
def test_no_module_the_app_imports_needs_what_the_spec_excludes(run_spec):
    excluded = run_spec("linux").namespace["EXCLUDES"]
    names = sorted(imported_names())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], input=json.dumps([excluded, names]),
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["needs"] == {}
    # the probe really ran the model stack and the GUI with torch hidden
    loaded = set(report["loaded"])
    assert {"mlx.core", "mlx_lm", "transformers", "PySide6.QtWidgets", "ui.main_window"} <= loaded
    assert "torch" not in loaded
