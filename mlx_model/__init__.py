"""The Gemma 4 unified model library in MLX: config, network, loading, processing, generation.

Imports no Qt and nothing from app/ or ui/; it runs no tools and knows no application.
The public names are imported lazily so that `import mlx_model` stays cheap:

- `load_model(path, ...)`: a checkpoint folder in the Hugging Face layout -> MLX model.
- `Processor`: chat messages with media -> the model's named inputs.
- `generate_step`: the token loop (chunked prefill, then decode) yielding token ids.
- `Engine`: load with a memory plan, stream one model turn as events (stopping at a tool
  call, which it parses and never runs), cancel.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

_LAZY_EXPORTS = {
    "load_model": "mlx_model.loading",
    "Processor": "mlx_model.processing",
    "generate_step": "mlx_model.generate",
    "Engine": "mlx_model.engine",
}

__all__ = list(_LAZY_EXPORTS)


# One thread at a time imports the heavy stack (mlx, mlx-lm, transformers). Two threads that
# import overlapping parts of it at once (the GUI thread computing a memory plan while the
# engine thread loads a model) can hold each other's module locks, and Python then fails
# one import with `_DeadlockError`.
_IMPORT_LOCK = threading.RLock()


def import_serialized(module_name: str) -> ModuleType:
    """`importlib.import_module`, serialized across threads; use it for lazy heavy imports."""
    with _IMPORT_LOCK:
        return importlib.import_module(module_name)


def __getattr__(name: str) -> Any:
    if name in _LAZY_EXPORTS:
        return getattr(import_serialized(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'mlx_model' has no attribute {name!r}")
