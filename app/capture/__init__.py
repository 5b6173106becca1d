"""Microphone push-to-talk and webcam clip capture, fed by injectable stream sources.

`MicrophoneRecorder` and `CameraRecorder` work on any `AudioSource` / `VideoSource`:
the real ones (sounddevice, OpenCV) on a user's machine, array- and file-backed ones in
tests. Events are plain thread-safe callbacks; the GUI wraps them in Qt signals.
"""

from app.capture.errors import Availability, CaptureError, CaptureUnavailable, PermissionDenied

__all__ = ["Availability", "CaptureError", "CaptureUnavailable", "PermissionDenied"]
