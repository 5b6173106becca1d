"""What the server may do: address, key, limits and allowed folders, checked before it starts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from app.media_budget import MediaBudget

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class ServerConfigError(ValueError):
    """The configuration is unsafe or inconsistent; the message says what to change."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; everything else is reachable from outside."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server instance (the CLI flags and the GUI's server settings map here)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (tests)
    api_key: str = ""  # "" = no key; required when `host` is not a loopback address
    model_id: str = ""  # the id `/v1/models` reports; "" = the checkpoint folder's name
    model_aliases: tuple[str, ...] = ()  # more names requests may use for the served model
    accept_any_model: bool = False  # every model name reaches the served model
    max_body_bytes: int = 32 * 1024 * 1024  # whole request body (images travel as base64)
    max_media_bytes: int = 20 * 1024 * 1024  # one image or audio clip, as sent (compressed)
    media_budget: MediaBudget = field(default_factory=MediaBudget)  # pixels, images, seconds
    max_messages: int = 1024
    max_waiting: int = 8  # requests allowed to wait while one generates; more get 429
    max_tokens_limit: int = 0  # the largest `max_tokens`; 0 = the loaded model's context
    allowed_folders: tuple[Path, ...] = field(default_factory=tuple)  # for file paths in image_url
    first_event_timeout_s: float = 600.0  # a generation that sends nothing for this long fails

    def validate(self) -> ServerConfig:
        """Raise `ServerConfigError` unless the configuration is safe to serve; returns self."""
        if not self.host.strip():
            raise ServerConfigError(
                "The server needs a host address (127.0.0.1 keeps it on this Mac)."
            )
        if not 0 <= self.port <= 65535:
            raise ServerConfigError(f"Port {self.port} is not a port number (1 to 65535).")
        if not is_loopback(self.host) and not self.api_key:
            raise ServerConfigError(
                f"Serving on {self.host} makes the model reachable from other machines; "
                "set an API key (--api-key) or bind to 127.0.0.1."
            )
        if self.api_key and (len(self.api_key) < 8 or any(c.isspace() for c in self.api_key)):
            raise ServerConfigError("The API key must be at least 8 characters without spaces.")
        for name in ("max_body_bytes", "max_media_bytes", "max_messages"):
            if getattr(self, name) < 1:
                raise ServerConfigError(f"{name} must be at least 1.")
        if self.max_tokens_limit < 0:
            raise ServerConfigError("max_tokens_limit cannot be negative (0: the context).")
        if self.max_waiting < 0:
            raise ServerConfigError("max_waiting cannot be negative.")
        try:
            self.media_budget.validate()
        except ValueError as exc:
            raise ServerConfigError(f"Media budget: {exc}") from exc
        return self
