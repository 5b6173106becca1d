"""The user's login-shell PATH, for programs a Finder-launched app must find (`npx`, `uvx`).

An app started from the Finder or the Dock inherits launchd's minimal PATH
(`/usr/bin:/bin:/usr/sbin:/sbin`), not the one the user's shell profile builds (Homebrew,
nvm, uv, ...), so an MCP server configured as `npx ...` is "not found" there although it
runs in Terminal. `login_shell_path()` asks the user's shell once (`$SHELL -ilc`, as
editors do to pick up the shell environment, with a time limit; then `-lc`) and caches the
answer. `find_program(name)` looks on the current PATH first, then on the login shell's;
`merged_path()` is the current PATH followed by the login shell's other entries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

_MARK = "__GEMMA_DESK_PATH__"
_lock = threading.Lock()
_cached: str | None = None


def user_shell() -> str:
    """The user's login shell: `$SHELL`, else the password database's entry, else /bin/sh."""
    shell = os.environ.get("SHELL", "")
    if not shell:
        try:
            import pwd

            shell = pwd.getpwuid(os.getuid()).pw_shell
        except (ImportError, KeyError, OSError):
            shell = ""
    return shell or "/bin/sh"


def login_shell_path(timeout_s: float = 5.0, refresh: bool = False) -> str:
    """The PATH the user's login shell sets up ("" when the shell cannot tell us)."""
    global _cached
    with _lock:
        if _cached is not None and not refresh:
            return _cached
        _cached = _ask_shell(user_shell(), timeout_s)
        return _cached


def _ask_shell(shell: str, timeout_s: float) -> str:
    script = f'printf "%s%s%s" "{_MARK}" "$PATH" "{_MARK}"'
    for flags in ("-ilc", "-lc"):  # interactive first: nvm and friends live in ~/.zshrc
        try:
            result = subprocess.run(
                [shell, flags, script],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                start_new_session=True,  # an interactive shell must not grab our terminal
            )
        except (OSError, subprocess.SubprocessError):
            continue
        parts = result.stdout.split(_MARK)
        if len(parts) >= 3 and parts[-2].strip():
            return parts[-2].strip()
    return ""


def merged_path(current: str | None = None) -> str:
    """The current PATH, then the login shell's entries it lacks."""
    current = os.environ.get("PATH", "") if current is None else current
    entries = [e for e in current.split(os.pathsep) if e]
    for entry in login_shell_path().split(os.pathsep):
        if entry and entry not in entries:
            entries.append(entry)
    return os.pathsep.join(entries)


def find_program(name: str) -> str | None:
    """The full path of a program: as given when it has a folder, else found on the current
    PATH, else on the login shell's PATH; None when neither has it."""
    if os.sep in name or (os.altsep and os.altsep in name):
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name) or shutil.which(name, path=login_shell_path() or None)
