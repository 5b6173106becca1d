"""Replay the memory attacks against a running server and print its peak RSS.

    .venv/bin/python bench/bench_memory_attacks.py                  # tiny random checkpoint
    .venv/bin/python bench/bench_memory_attacks.py --model PATH     # a real checkpoint

Starts `gemma-desk serve`'s app in a child process (the model behind it through the engine
service, as `serve` runs it) and measures that process's resident memory while it is
attacked (its kernel high-water mark, reset before each step where Linux allows, plus
5 ms sampling):

1. six 9000×9000 PNGs in one request: the peak must stay under 1 GB above idle, or the
   request must be refused with a 413 within 2 s;
2. the largest request the default budget lets through (two 7000×7000 PNGs, 98 MP),
   processed to the end: its peak above idle;
3. a two-hour FLAC of silence: refused within 1 s;
4. 20 requests like (1) sent at once while the queue is full (one answer generating, the
   waiting places taken): all answered 429, the RSS moving by less than 100 MB.

The queue is held full without generating: a bench-only route parks the engine thread
(`EngineService.call` with a job that waits), so the request that has the turn and the
ones waiting behind it stay put, whatever a random model would say, and no running
answer grows the RSS meanwhile. Prints one line per step and a JSON summary; exits 1 when a
limit above is not met. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import soundfile  # noqa: E402
from PIL import Image  # noqa: E402

MB = 1024 * 1024

SERVER = textwrap.dedent(
    """
    import asyncio, sys, threading
    from starlette.responses import JSONResponse
    from app.server.app import create_app
    from app.server.config import ServerConfig
    from app.server.runner import StoppableServer, uvicorn_config
    from app.engine_service import EngineService
    from app.engines.contract import LocalModel

    checkpoint, port, max_waiting = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    service = EngineService()  # the app's own engine factory, as `serve` loads the model
    job = service.load(LocalModel(checkpoint))
    job.wait()
    if job.error is not None:
        sys.exit(job.error.message)
    config = ServerConfig(port=port, max_waiting=max_waiting)
    app = create_app(service, config)

    release = threading.Event()

    async def hold(request):  # bench seam: the engine thread waits until released
        release.clear()
        service.call(lambda engine: release.wait(600))
        return JSONResponse({"held": True})

    async def let_go(request):
        release.set()
        return JSONResponse({"released": True})

    app.add_route("/bench/hold", hold, methods=["POST"])
    app.add_route("/bench/release", let_go, methods=["POST"])
    server = StoppableServer(uvicorn_config(app, config), on_stop=service.cancel)
    print("ready", flush=True)
    asyncio.run(server.serve())
    service.shutdown()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PeakRSS:
    """Peak resident memory of a process over a step: the kernel's high-water mark (reset
    through /proc/PID/clear_refs where allowed) and 5 ms sampling, whichever is higher."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.pid = pid
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _hwm(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self) -> PeakRSS:
        self.hwm_reset = False
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            pass
        self._peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            try:
                self._peak = max(self._peak, self.rss())
            except psutil.Error:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        hwm = self._hwm() if self.hwm_reset else None
        self.peak = max(self._peak, hwm or 0)


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG with some structure (a gradient with stripes), compressed hard: small on the wire."""
    rng = np.random.default_rng(seed)
    row = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = row[None, :, None]
    image[::97, :, :] = rng.integers(0, 255, 3, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def flac_of_silence(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, 1, format="FLAC") as sound:
        block = np.zeros(rate * 60, dtype=np.int16)
        left = int(seconds * rate)
        while left > 0:
            sound.write(block[: min(left, block.size)])
            left -= block.size
    return buffer.getvalue()


def chat_body(model: str, parts: list[dict], max_tokens: int = 4) -> bytes:
    content = [*parts, {"type": "text", "text": "What is in these?"}]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    }
    return json.dumps(body).encode()


def image_parts(data: bytes, count: int) -> list[dict]:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return [{"type": "image_url", "image_url": {"url": url}}] * count


def post(client: httpx2.Client, body: bytes) -> tuple[int, float, str]:
    started = time.perf_counter()
    response = client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    elapsed = time.perf_counter() - started
    try:
        message = response.json().get("error", {}).get("message", "")
    except ValueError:
        message = response.text[:200]
    return response.status_code, elapsed, message


def settle(meter: PeakRSS, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return meter.rss()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder (default: a tiny random one)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-waiting", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gemma-desk-attacks-") as tmp:
        model_path = args.model
        if model_path is None:
            from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint

            model_path = str(write_tiny_checkpoint(Path(tmp) / "tiny", seed=0, dtype="float32"))
        port = args.port or free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        child = subprocess.Popen(
            [sys.executable, "-c", SERVER, model_path, str(port), str(args.max_waiting)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            return attack(child.pid, port, model_path, args)
        finally:
            child.terminate()
            child.wait(60)


def attack(pid: int, port: int, model_path: str, args: argparse.Namespace) -> int:
    base = f"http://127.0.0.1:{port}"
    client = httpx2.Client(base_url=base, timeout=600)
    for _ in range(600):
        try:
            if client.get("/health").status_code == 200:
                break
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    model = client.get("/v1/models").json()["data"][0]["id"]
    meter = PeakRSS(pid)
    # Warm up (lazy imports, the first image through the processor), then take the idle RSS.
    print("warming up ...", file=sys.stderr)
    assert post(client, chat_body(model, image_parts(png(64, 48), 1)))[0] == 200
    idle = settle(meter)
    results: dict[str, object] = {"idle_rss_mb": round(idle / MB, 1)}
    checks: dict[str, bool] = {}

    def step(name: str, body: bytes) -> dict:
        before = settle(meter)
        with meter:
            status, elapsed, message = post(client, body)
        line = {
            "status": status,
            "seconds": round(elapsed, 3),
            "rss_before_mb": round(before / MB, 1),
            "peak_rss_mb": round(meter.peak / MB, 1),
            "peak_above_idle_mb": round((meter.peak - idle) / MB, 1),
            "added_by_the_step_mb": round((meter.peak - before) / MB, 1),
            "message": message,
        }
        print(f"{name:<38} {status}  {elapsed:6.3f} s  peak {meter.peak / MB:7.1f} MB: "
              f"+{(meter.peak - idle) / MB:6.1f} over idle, +{(meter.peak - before) / MB:6.1f} "
              f"over the RSS before it  {message[:60]}")  # fmt: skip
        results[name] = line
        return line

    print("building the payloads ...", file=sys.stderr)
    huge = png(9000, 9000)
    six = chat_body(model, image_parts(huge, 6))
    within = chat_body(model, image_parts(png(7000, 7000, seed=1), 2))
    flac = flac_of_silence(2 * 3600)
    audio = {"type": "input_audio",
             "input_audio": {"data": base64.b64encode(flac).decode(), "format": "flac"}}  # fmt: skip
    results["payloads"] = {
        "six_9000x9000_pngs_mb": round(len(six) / MB, 2),
        "two_7000x7000_pngs_mb": round(len(within) / MB, 2),
        "flac_2h_kb": round(len(flac) / 1024),
    }
    print(f"payloads: {results['payloads']}", file=sys.stderr)

    line = step("six 9000x9000 PNGs", six)
    checks["six PNGs: 413 within 2 s, or peak < 1 GB over idle"] = (
        line["status"] == 413 and line["seconds"] < 2
    ) or line["peak_above_idle_mb"] < 1024
    line = step("2 h FLAC of silence", chat_body(model, [audio]))
    checks["FLAC: refused within 1 s"] = line["status"] in (400, 413) and line["seconds"] < 1
    line = step("two 7000x7000 PNGs, within the budget", within)
    checks["largest request within the budget: answered, peak < 1 GB over idle"] = (
        line["status"] == 200 and line["peak_above_idle_mb"] < 1024
    )

    # 4. 20 requests like the first while the queue is full: the engine thread parked, one
    # request holding the turn and `max_waiting` waiting behind it.
    client.post("/bench/hold")
    holders: list[threading.Thread] = []

    def hold() -> None:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}],
                           "max_tokens": 4}).encode()  # fmt: skip
        with httpx2.Client(base_url=base, timeout=600) as own:
            post(own, body)

    for _ in range(1 + args.max_waiting):
        holders.append(threading.Thread(target=hold, daemon=True))
        holders[-1].start()
    for _ in range(600):
        stats = client.get("/health").json()["queue"]
        if stats["running"] == 1 and stats["waiting"] == args.max_waiting:
            break
        time.sleep(0.05)
    with meter:  # how the RSS drifts with nothing happening, for comparison
        drift_before = meter.rss()
        time.sleep(2.0)
    drift = meter.peak - drift_before

    def refused(_: int) -> int:
        with httpx2.Client(base_url=base, timeout=60) as own:
            return post(own, six)[0]

    before = meter.rss()
    started = time.perf_counter()
    with meter, ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(refused, range(20)))
    elapsed = time.perf_counter() - started
    moved = meter.peak - before
    print(f"{'20 x six PNGs, queue full':<38} {sorted(set(statuses))}  {elapsed:6.3f} s  "
          f"RSS before {before / MB:.1f} MB, peak {meter.peak / MB:.1f} MB: moved "
          f"{moved / MB:+.1f} MB (drift without an attack over 2 s: {drift / MB:+.1f} MB)")  # fmt: skip
    results["20 requests while the queue is full"] = {
        "statuses": sorted(set(statuses)),
        "count": len(statuses),
        "seconds": round(elapsed, 3),
        "rss_before_mb": round(before / MB, 1),
        "peak_rss_mb": round(meter.peak / MB, 1),
        "moved_mb": round(moved / MB, 1),
        "drift_without_attack_mb": round(drift / MB, 1),
    }
    checks["queue full: 20 x 429, RSS moved < 100 MB"] = statuses == [429] * 20 and moved < 100 * MB
    client.post("/bench/release")
    for holder in holders:
        holder.join(120)
    results["hwm_reset"] = meter.hwm_reset
    results["checks"] = checks
    print(json.dumps(results, indent=1))
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
