"""Errors and availability reports shared by the microphone and the camera."""

from __future__ import annotations

import sys
from dataclasses import dataclass

MIC_PERMISSION_HINT = (
    "Open System Settings > Privacy & Security > Microphone, turn on Gemma Desk "
    "(or the Terminal you started it from), then quit and reopen Gemma Desk."
)
CAMERA_PERMISSION_HINT = (
    "Open System Settings > Privacy & Security > Camera, turn on Gemma Desk "
    "(or the Terminal you started it from), then quit and reopen Gemma Desk."
)


class CaptureError(RuntimeError):
    """A capture failed while running (device lost, stream error); the message says what happened."""


class CaptureUnavailable(CaptureError):
    """The feature cannot work on this machine right now; `reason` is shown to the user as is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermissionDenied(CaptureUnavailable):
    """The operating system refused access to the device; the message says how to grant it."""


@dataclass(frozen=True)
class Availability:
    """Whether a capture feature can be offered, and if not, why (a sentence for the user)."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


def is_mac(platform: str | None = None) -> bool:
    """True on macOS (or when `platform` says "darwin"; tests pass it to exercise Mac paths)."""
    return (platform or sys.platform) == "darwin"
