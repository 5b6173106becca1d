"""A process that ran models through the engine service exits cleanly (rc 0, no abort).

MLX gives each thread its own stream; one left behind by a finished engine thread made
the process abort at exit on Linux ("terminate called without an active exception").
The real engine in a whole process is covered by tests/server/test_serve_signals.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Four services whose engines touch MLX's global generator on their own threads: before the
# fix this aborted at exit nearly every time; `shutdown` is called or left to exit handling.
MANY_SERVICES = textwrap.dedent(
    """
    import sys
    import mlx.core as mx
    from app.engine_service import EngineService
    from app.engines.contract import EngineInfo

    class Engine:
        def __init__(self, spec, progress=None):
            mx.random.seed(1)
            self.weights = mx.ones((8, 8))
            mx.eval(self.weights)

        def info(self):
            return EngineInfo(kind="local", source="weights", name="weights")

        def close(self):
            pass

    services = [EngineService(engine_factory=Engine) for _ in range(4)]
    for service in services:
        assert service.load("weights").wait(60)
    if sys.argv[1] == "shutdown":
        assert all(service.shutdown() for service in services)
    print("end", flush=True)
    """
)


def run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize("ending", ["shutdown", "left to exit"])
def test_engine_threads_that_used_mlx_end_without_aborting_the_process(ending: str) -> None:
    for _ in range(2):
        child = run_child(MANY_SERVICES, ending)
        assert "terminate called" not in child.stderr
        assert child.returncode == 0, child.stderr[-2000:]
        assert child.stdout.strip() == "end"
