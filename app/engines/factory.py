"""The default engine factory: a `LocalModel` opens the local MLX engine, a `RemoteModel` the
remote client."""

from __future__ import annotations

from app.engines.contract import Engine, EngineSpec, ProgressCallback, RemoteModel
from app.engines.local import LocalEngine
from app.engines.remote import RemoteEngine


def open_engine(spec: EngineSpec, progress: ProgressCallback | None = None) -> Engine:
    """Open the engine a spec names (loading a local model takes a while; `progress` hears)."""
    if isinstance(spec, RemoteModel):
        return RemoteEngine.open(spec)
    return LocalEngine.open(spec, progress)
