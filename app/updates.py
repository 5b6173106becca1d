"""Update checks against a release feed: a small JSON document at a URL set in Settings.

Nothing here runs unless the user asks (About Gemma Desk or "Check for Updates…"), and the
feed URL is empty by default, which turns checking off. A check reads the feed, compares its
version with the app's and, when it is newer, offers the feed's download page to open in the
browser. Nothing is downloaded or installed.

The feed:

    {
      "version": "0.2.0",                                      required, PEP 440
      "download_url": "https://example.org/gemma-desk/",       required, https
      "notes": "What changed, in a few lines of plain text.",  optional
      "published": "2026-05-01"                                optional
    }

Both URLs must be https (plain http only to this machine, for a local mirror or a test):
the feed decides which page the app opens, so it must come from where it says it does.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

MAX_FEED_BYTES = 64 * 1024
TIMEOUT_S = 10.0
NOTES_LIMIT = 2000


class UpdateCheckError(Exception):
    """The feed could not be read or is not a valid feed; the message says which, for the user."""


@dataclass(frozen=True)
class UpdateCheck:
    """What the feed offers, beside the version running now."""

    current: str
    latest: str
    download_url: str
    notes: str = ""
    published: str = ""

    @property
    def available(self) -> bool:
        """True when the feed's version is newer than the running one."""
        return Version(self.latest) > Version(self.current)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_allowed_url(url: str) -> bool:
    """https with a host, or http to this machine."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))


def parse_feed(data: bytes, current: str) -> UpdateCheck:
    """The feed's offer from its bytes; raises `UpdateCheckError` for anything but a valid feed."""
    try:
        feed: Any = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpdateCheckError(f"The release feed is not JSON ({exc}).") from None
    if not isinstance(feed, dict):
        raise UpdateCheckError("The release feed is not a JSON object.")
    latest, download_url = feed.get("version"), feed.get("download_url")
    if not isinstance(latest, str):
        raise UpdateCheckError('The release feed has no "version".')
    try:
        Version(latest)
    except InvalidVersion:
        raise UpdateCheckError(f"The release feed's version {latest!r} is not valid.") from None
    if not isinstance(download_url, str) or not is_allowed_url(download_url):
        raise UpdateCheckError(
            f"The release feed's download_url {download_url!r} is not an https:// address."
        )
    notes, published = feed.get("notes", ""), feed.get("published", "")
    return UpdateCheck(
        current=current,
        latest=latest,
        download_url=download_url,
        notes=notes[:NOTES_LIMIT] if isinstance(notes, str) else "",
        published=published if isinstance(published, str) else "",
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an address a feed may have (never http:// elsewhere)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's
        if not is_allowed_url(newurl):
            raise UpdateCheckError(f"The release feed redirected to {newurl!r}, not https://.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def tls_context() -> ssl.SSLContext:
    """The operating system's trust store (macOS Keychain) through truststore, so a frozen app
    verifies https without a certificate bundle of its own; Python's defaults without it."""
    try:
        import truststore
    except ImportError:
        return ssl.create_default_context()
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def check(feed_url: str, current: str, timeout: float = TIMEOUT_S) -> UpdateCheck:
    """Read the feed at `feed_url` (one GET) and compare it with `current`."""
    if not is_allowed_url(feed_url):
        raise UpdateCheckError(f"The release feed {feed_url!r} is not an https:// address.")
    request = urllib.request.Request(
        feed_url, headers={"Accept": "application/json", "User-Agent": f"GemmaDesk/{current}"}
    )
    opener = urllib.request.build_opener(
        _CheckedRedirects, urllib.request.HTTPSHandler(context=tls_context())
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(MAX_FEED_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise UpdateCheckError(f"The release feed answered {exc.code} {exc.reason}.") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UpdateCheckError(f"Could not reach the release feed ({reason}).") from None
    if len(data) > MAX_FEED_BYTES:
        raise UpdateCheckError(f"The release feed is larger than {MAX_FEED_BYTES // 1024} KiB.")
    return parse_feed(data, current)
