"""Secrets (API keys, MCP headers and environment) in the OS keychain where there is one.

`SecretStore` keeps named secrets through the `keyring` package: the Keychain on a Mac,
the Secret Service on a Linux desktop, the Credential Locker on Windows. Where no keychain
can be used (keyring's `fail` or `null` backend, or one that errors), `available` is False
and the settings keep the secret in the database as before, inside the private data folder
(0700), and `location()` says so for the Settings window.

Each data folder has its own secrets: the keychain account names carry the folder's path.

`plain_http_warning(url, what)` is the warning to show before a key travels over plain
`http://` to another machine.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

SERVICE = "Gemma Desk"
_UNUSABLE_BACKENDS = ("keyring.backends.fail", "keyring.backends.null")


class SecretStore:
    """Named secrets of one data folder (`scope`) in the OS keychain; see the module docstring."""

    def __init__(self, scope: str, backend: Any = None) -> None:
        self.scope = scope
        self._backend = backend

    @property
    def backend(self) -> Any:
        """The keyring backend in use (keyring's own choice unless one was given), or None."""
        if self._backend is None:
            try:
                import keyring

                self._backend = keyring.get_keyring()
            except Exception:  # noqa: BLE001 - no keyring at all: the database keeps secrets
                log.exception("no keyring backend")
                return None
        return self._backend

    @property
    def available(self) -> bool:
        """True when secrets can go into a real keychain."""
        backend = self.backend
        if backend is None or type(backend).__module__ in _UNUSABLE_BACKENDS:
            return False
        chained = getattr(backend, "backends", None)  # keyring's ChainerBackend
        return chained is None or bool(chained)

    def location(self) -> str:
        """Where secrets are kept, for people ("the macOS Keychain", "the app's database ...")."""
        if not self.available:
            return (
                "the app's database, in plain text (no keychain is available on this "
                "computer; the data folder is readable by your user only)"
            )
        if sys.platform == "darwin":
            return "the macOS Keychain"
        name = getattr(self.backend, "name", "") or type(self.backend).__name__
        return f"the system keychain ({name})"

    def _account(self, name: str) -> str:
        return f"{name} ({self.scope})"

    def get(self, name: str) -> str | None:
        """The secret, or None when the keychain has none (or cannot be read)."""
        if not self.available:
            return None
        try:
            return self.backend.get_password(SERVICE, self._account(name))
        except Exception:  # noqa: BLE001 - reported by the caller as a missing secret
            log.exception("reading %s from the keychain failed", name)
            return None

    def set(self, name: str, value: str) -> bool:
        """Keep `value` (an empty one deletes it); False when the keychain refused it."""
        if not self.available:
            return False
        if not value:
            self.delete(name)
            return True
        try:
            self.backend.set_password(SERVICE, self._account(name), value)
            return True
        except Exception:  # noqa: BLE001 - the caller falls back to the database
            log.exception("writing %s to the keychain failed", name)
            return False

    def delete(self, name: str) -> None:
        if not self.available:
            return
        with contextlib.suppress(Exception):  # nothing stored under that name
            self.backend.delete_password(SERVICE, self._account(name))


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str, what: str) -> str | None:
    """A warning when `what` (e.g. "the API key") would be sent unencrypted to another machine."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or is_loopback_host(parts.hostname):
        return None
    return (
        f"{what} is sent unencrypted to {parts.hostname} (plain http://): anyone on the "
        "network can read it. Use an https:// URL, or a server on this computer."
    )
