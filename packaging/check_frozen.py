"""Run the frozen app as a user would: copied outside the source tree, no venv on PATH.

    python3 packaging/check_frozen.py [dist/gemma-desk-VERSION-linux-ARCH.tar.gz]
    python3 packaging/check_frozen.py "dist/Gemma Desk.app"      # what build_macos.sh runs

`make check-package` and CI run it on the Linux archive after `make package`; the macOS
build script runs it on the signed app. Standard library only, so any Python 3.11+ runs it.
Each check prints one line; the exit code is 1 when any fails:

- version: `gemma-desk --version` prints pyproject.toml's version;
- window: `gemma-desk --smoke-test` opens the window (Linux: under Xvfb with Qt's xcb platform;
  macOS: Cocoa, or `QT_QPA_PLATFORM` when set, e.g. offscreen on a builder without a session),
  renders it, typesets a formula (matplotlib's mathtext) and quits;
- turn: the app writes a tiny checkpoint, then `generate` answers a prompt with an image and
  an audio clip (their tokens reach the prompt: it is longer than the text-only one);
- server: `serve` answers one chat request with an image over HTTP, then stops on Ctrl-C
  (SIGINT) with exit code 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import plistlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import wave
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
DEFAULT_ARCHIVE = ROOT / "dist" / f"gemma-desk-{VERSION}-linux-{platform.machine()}.tar.gz"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MACOS = sys.platform == "darwin"
PROMPT = "What do you see and hear?"


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what happened instead."""


def write_png(path: Path, width: int = 64, height: int = 48) -> Path:
    """A small RGB gradient as a PNG (zlib and struct: no imaging library needed)."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (4 * x % 256, 5 * y % 256, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A 440 Hz tone as 16-bit mono WAV."""
    samples = (
        int(9000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def clean_environment(home: Path) -> dict[str, str]:
    """A user's environment, nothing of the build's: the system PATH only (no venv, no
    PYTHONPATH), a fresh home, the app's folders inside it, offline."""
    return {
        "PATH": SYSTEM_PATH,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(home / "tmp"),
        "GEMMA_DESK_DATA_DIR": str(home / "data"),
        "GEMMA_DESK_CONFIG_DIR": str(home / "config"),
        "HF_HUB_OFFLINE": "1",
    }


class FrozenApp:
    """The unpacked app: runs its executable in the clean environment, in its own folder."""

    def __init__(self, executable: Path, work: Path) -> None:
        self.executable = executable
        self.work = work
        (work / "tmp").mkdir(parents=True, exist_ok=True)
        self.env = clean_environment(work)

    def run(self, *args: str, timeout: float = 300, wrapper: list[str] = (), **env: str):
        result = subprocess.run(
            [*wrapper, str(self.executable), *args],
            cwd=self.work, env={**self.env, **env}, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        return result.returncode, result.stdout + result.stderr

    def start(self, *args: str) -> subprocess.Popen:
        log = open(self.work / "server.log", "w")  # noqa: SIM115 - closed by the caller's wait
        return subprocess.Popen(
            [str(self.executable), *args], cwd=self.work, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def tail(text: str, lines: int = 30) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def expect(ok: bool, message: str, output: str = "") -> None:
    if not ok:
        raise CheckFailed(message + (f"\n{tail(output)}" if output else ""))


def check_version(app: FrozenApp) -> str:
    code, output = app.run("--version", timeout=60)
    expect(code == 0, f"exit code {code}", output)
    expect(output.strip() == f"gemma-desk {VERSION}", f"printed {output.strip()!r}", output)
    return output.strip()


def check_window(app: FrozenApp) -> str:
    if MACOS:
        wrapper, platform_name = [], os.environ.get("QT_QPA_PLATFORM", "cocoa")
    elif shutil.which("xvfb-run"):
        wrapper, platform_name = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"], "xcb"
    elif os.environ.get("CI"):
        raise CheckFailed("xvfb-run is missing (Debian package xvfb; .ci/run installs it)")
    else:
        wrapper, platform_name = [], "offscreen"
    code, output = app.run("--smoke-test", wrapper=wrapper, QT_QPA_PLATFORM=platform_name)
    expect(code == 0, f"exit code {code}", output)
    expect("smoke test: window" in output, "no 'smoke test: window' line", output)
    line = next(line for line in output.splitlines() if "smoke test: window" in line)
    expect("formula=typeset" in line, "formulas not typeset (matplotlib's mathtext)", output)
    return f"{line.removeprefix('smoke test: ')} ({platform_name})"


def generate(app: FrozenApp, model: Path, *media: str) -> dict:
    code, output = app.run(
        "generate", "--model", str(model), "--prompt", PROMPT, "--max-tokens", "8",
        "--temperature", "0", "--json", *media,
    )  # fmt: skip
    expect(code == 0, f"generate {' '.join(media)}: exit code {code}", output)
    for line in reversed(output.splitlines()):  # stderr's log lines may come after it
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    raise CheckFailed(f"generate printed no JSON object\n{tail(output)}")


def check_turn(app: FrozenApp) -> str:
    model = app.work / "tiny-model"
    code, output = app.run("make-test-checkpoint", str(model), timeout=120)
    expect(code == 0, f"make-test-checkpoint: exit code {code}", output)
    image = write_png(app.work / "picture.png")
    audio = write_wav(app.work / "tone.wav")
    plain = generate(app, model)
    answer = generate(app, model, "--image", str(image), "--audio", str(audio))
    expect(answer["stats"]["generated_tokens"] > 0, f"no tokens generated: {answer}")
    with_media = answer["stats"]["prefilled_tokens"]
    text_only = plain["stats"]["prefilled_tokens"]
    expect(with_media > text_only, f"media added no tokens ({with_media} vs {text_only})")
    return (
        f"{answer['stats']['generated_tokens']} tokens answered; prompt {with_media} tokens "
        f"with image+audio, {text_only} without"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until_up(base: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"serve exited with {server.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise CheckFailed(f"serve did not answer /health within {seconds:.0f} s")


def check_server(app: FrozenApp) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    image = base64.b64encode(write_png(app.work / "server-picture.png").read_bytes()).decode()
    server = app.start("serve", "--model", str(app.work / "tiny-model"), "--port", str(port))
    try:
        wait_until_up(base, server, 180)
        content = [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
            {"type": "text", "text": PROMPT},
        ]
        reply = post_json(
            f"{base}/v1/chat/completions",
            {"model": "tiny-model", "messages": [{"role": "user", "content": content}],
             "max_tokens": 5, "temperature": 0},
            timeout=180,
        )  # fmt: skip
        message = reply["choices"][0]["message"]
        expect(isinstance(message.get("content"), str), f"no answer text: {reply}")
        usage = reply["usage"]
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        raise CheckFailed(f"request failed: {exc}\n{tail(server_log(app))}") from None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    expect(code == 0, f"exit code {code} after Ctrl-C (SIGINT)", server_log(app))
    return (
        f"answered {usage['completion_tokens']} tokens to a {usage['prompt_tokens']}-token "
        f"prompt with an image; exit code 0 after Ctrl-C"
    )


def server_log(app: FrozenApp) -> str:
    path = app.work / "server.log"
    return path.read_text(errors="replace") if path.exists() else ""


CHECKS: list[tuple[str, Callable[[FrozenApp], str]]] = [
    ("version", check_version),
    ("window", check_window),
    ("turn", check_turn),
    ("server", check_server),
]


def place(target: Path, into: Path) -> Path:
    """Unpack the archive (or copy the app folder or .app bundle) into `into`; its executable."""
    into.mkdir(parents=True)
    if target.is_file():
        subprocess.run(["tar", "-xzf", str(target), "-C", str(into)], check=True)
        executable = into / "gemma-desk" / "gemma-desk"
    elif target.suffix == ".app":
        shutil.copytree(target, into / target.name, symlinks=True)
        with open(target / "Contents" / "Info.plist", "rb") as plist:
            name = plistlib.load(plist)["CFBundleExecutable"]
        executable = into / target.name / "Contents" / "MacOS" / name
    else:
        shutil.copytree(target, into / target.name, symlinks=True)
        executable = into / target.name / "gemma-desk"
    if not executable.is_file():
        raise SystemExit(f"{target} holds no executable at {executable.relative_to(into)}")
    return executable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "target", nargs="?", type=Path, default=DEFAULT_ARCHIVE,
        help="the Linux .tar.gz (default), its unpacked folder, or a .app bundle",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if not args.target.exists():
        print(f"nothing at {args.target}: run `make package` first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gemma-desk-frozen-"))
    if work.resolve().is_relative_to(ROOT):
        raise SystemExit(f"the temporary folder {work} is inside the source tree")
    passed = failed = 0
    try:
        app = FrozenApp(place(args.target, work / "app"), work / "home")
        print(f"checking {args.target.name}, placed in {work}")
        for name, check in CHECKS:
            start = time.monotonic()
            try:
                detail = check(app)
            except (CheckFailed, subprocess.TimeoutExpired) as exc:
                failed += 1
                print(f"FAIL {name}: {exc}", flush=True)
            else:
                passed += 1
                print(f"ok   {name}: {detail} ({time.monotonic() - start:.1f} s)", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check_frozen: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
