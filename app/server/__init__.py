"""The local OpenAI-compatible API server: `create_app` (Starlette) over the engine service.

`gemma-desk serve` (see `command`) runs it on its own; the GUI switches the same app on
inside its process with `ServerThread`, sharing the loaded model through the engine service.
"""

from app.server.app import create_app
from app.server.config import ServerConfig, ServerConfigError
from app.server.runner import ServerThread

__all__ = ["ServerConfig", "ServerConfigError", "ServerThread", "create_app"]
