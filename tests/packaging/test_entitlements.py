"""The hardened runtime's entitlements: the microphone and camera, nothing more."""

from __future__ import annotations

import plistlib
from pathlib import Path

ENTITLEMENTS = Path(__file__).resolve().parents[2] / "packaging" / "entitlements.plist"


def entitlements() -> dict:
    return plistlib.loads(ENTITLEMENTS.read_bytes())


def test_microphone_and_camera_are_granted():
    granted = {key for key, value in entitlements().items() if value is True}
    assert granted == {"com.apple.security.device.audio-input", "com.apple.security.device.camera"}


def test_jit_and_unsigned_executable_memory_stay_off():
    values = entitlements()
    assert values["com.apple.security.cs.allow-jit"] is False
    assert values["com.apple.security.cs.allow-unsigned-executable-memory"] is False


def test_library_validation_stays_on():
    assert entitlements()["com.apple.security.cs.disable-library-validation"] is False
