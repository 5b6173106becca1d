"""The Gemma 4 unified model engine in MLX: config, network, loading, processing, generation.

Imports no Qt and nothing from app/ or ui/. The public names are imported lazily so
that `import mlx_model` stays cheap:

- `load_model(path, ...)`: a checkpoint folder in the Hugging Face layout -> MLX model.
- `Processor`: chat messages with media -> the model's named inputs.
- `Engine`: load with a memory plan, stream events, cancel.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_EXPORTS = {
    "load_model": "mlx_model.loading",
    "Processor": "mlx_model.processing",
    "Engine": "mlx_model.engine",
}

__all__ = list(_LAZY_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'mlx_model' has no attribute {name!r}")
