"""Fixtures for the long-recording tests: the tiny checkpoint's processor config (the
10-minute spoken recording and the 5-minute video are in tests/app/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def processor_config(tiny_checkpoint: Path):
    from mlx_model.processing import ProcessorConfig

    return ProcessorConfig.from_pretrained(tiny_checkpoint)
