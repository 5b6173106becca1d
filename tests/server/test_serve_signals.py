"""`gemma-desk serve` stops on SIGINT/SIGTERM with exit status 0, cancelling the running answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.doubles import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start_serve(checkpoint: Path, port: int, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["serve", "--data-dir", str(data_dir), "--model", str(checkpoint)]
    child = subprocess.Popen(
        [sys.executable, "-m", "app", *command, "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 240
    for line in child.stderr:
        if "Uvicorn running" in line:
            return child
        assert time.monotonic() < deadline, "serve did not start"
    raise AssertionError(f"serve ended before listening (rc {child.wait()})")


def stream_until_end(
    port: int, model: str, first_chunk: threading.Event, received: list[bytes]
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "stream": True,
        "max_tokens": 30_000,
        "temperature": 1.0,
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            for line in response:
                received.append(line)
                first_chunk.set()
    except Exception as exc:  # noqa: BLE001 - recorded for the assertion
        received.append(repr(exc).encode())
    finally:
        first_chunk.set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_exits_0_on_a_stop_signal_after_ending_the_running_answer(
    tiny_checkpoint: Path, signum: int, tmp_path: Path
) -> None:
    port = free_port()
    child = start_serve(tiny_checkpoint, port, tmp_path / "data")
    try:
        first_chunk, received = threading.Event(), []
        worker = threading.Thread(
            target=stream_until_end, args=(port, tiny_checkpoint.name, first_chunk, received)
        )
        worker.start()
        assert first_chunk.wait(120)
        sent = time.monotonic()
        child.send_signal(signum)
        rest = child.communicate(timeout=60)[1]
        worker.join(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert "terminate called" not in rest
    assert child.returncode == 0, rest[-2000:]
    assert time.monotonic() - sent < 15
    assert b"data: [DONE]\n" in received, received[-3:]
