"""Fixtures for the packaging tests: the spec run under stand-ins (see spec_runner.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.packaging.spec_runner import SpecRun
from tests.packaging.spec_runner import run_spec as _run_spec


@pytest.fixture
def run_spec() -> Callable[[str], SpecRun]:
    """Run packaging/gemma_desk.spec as PyInstaller would on a platform ("darwin", "linux")."""
    return _run_spec
