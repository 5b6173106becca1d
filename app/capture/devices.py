"""The microphones and cameras of this machine by name, for Settings ▸ Devices and for
saying which device a recording uses.

Microphones come from PortAudio (sounddevice), cameras from the system: the
video4linux names on Linux, `system_profiler` on a Mac (in AVFoundation's order, which is
the order OpenCV opens them by index). The chosen device is kept by name in the settings
(`mic_device`, `camera_device`; None: the system default) and found again by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.capture.errors import CaptureUnavailable
from app.capture.sources import AudioDevice, CameraDevice, list_audio_inputs


def microphones() -> tuple[list[AudioDevice], str]:
    """The input devices, and "" or why there are none (a sentence for the user)."""
    try:
        devices = list_audio_inputs()
    except CaptureUnavailable as exc:
        return [], exc.reason
    return devices, "" if devices else "No microphone found. Connect one and try again."


def default_microphone_name() -> str:
    devices, _ = microphones()
    chosen = next((d for d in devices if d.is_default), devices[0] if devices else None)
    return chosen.name if chosen else ""


def cameras(platform: str | None = None) -> list[CameraDevice]:
    """The cameras by name, in the order OpenCV opens them (index)."""
    platform = platform or sys.platform
    try:
        if platform == "darwin":
            return _mac_cameras()
        if platform.startswith("linux"):
            return _linux_cameras()
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return []


def camera_index(name: str | None, available: list[CameraDevice] | None = None) -> int:
    """The OpenCV index of the camera called `name` (None, or not found: the first, 0)."""
    if not name:
        return 0
    found = [c for c in (available if available is not None else cameras()) if c.name == name]
    return found[0].index if found else 0


def _linux_cameras(root: Path = Path("/sys/class/video4linux")) -> list[CameraDevice]:
    found = []
    for node in sorted(root.glob("video*"), key=lambda p: int(p.name[5:] or 0)):
        index_file = node / "index"
        if index_file.is_file() and index_file.read_text().strip() != "0":
            continue  # a camera's metadata node, not the picture
        name = (node / "name").read_text().strip() if (node / "name").is_file() else node.name
        found.append(CameraDevice(int(node.name[5:]), name))
    return found


def _mac_cameras() -> list[CameraDevice]:
    result = subprocess.run(
        ["system_profiler", "SPCameraDataType", "-json"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    items = json.loads(result.stdout).get("SPCameraDataType", [])
    return [CameraDevice(index, str(item.get("_name", f"Camera {index}")))
            for index, item in enumerate(items)]  # fmt: skip
