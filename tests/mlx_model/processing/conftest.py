"""Fixtures for processing tests: our processor and transformers' reference processor."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlx_model.processing import Processor


@pytest.fixture(scope="session")
def processor(tiny_checkpoint: Path) -> Processor:
    return Processor.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session")
def hf_processor(tiny_checkpoint: Path):
    """transformers' `Gemma4UnifiedProcessor` for the same checkpoint (the parity oracle)."""
    transformers = pytest.importorskip(
        "transformers", reason="reference stack (dev extra) not installed"
    )
    reference = transformers.AutoProcessor.from_pretrained(tiny_checkpoint)
    assert type(reference).__name__ == "Gemma4UnifiedProcessor"
    return reference
