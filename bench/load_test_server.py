"""Load test of the OpenAI-compatible server on loopback: bounded requests, concurrency and time.

    .venv/bin/python bench/load_test_server.py                     # tiny random checkpoint
    .venv/bin/python bench/load_test_server.py --model PATH        # a real checkpoint
    .venv/bin/python bench/load_test_server.py --url http://127.0.0.1:8765/v1 --api-key K

Fires `--requests` chat completions from `--clients` concurrent clients (official `openai`
package, no retries), half of them streamed. Every request must be answered (200) or
cleanly rejected (429 queue full / 503 unavailable); anything else is a failure. Afterwards
the server must still answer /health and one more chat. Prints the figures as JSON and as
a Markdown table row for docs/PERFORMANCE.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2  # noqa: E402
import openai  # noqa: E402

PROMPTS = [
    "Hello, how are you today?",
    "Describe the picture.",
    "What is the weather in Paris?",
    "Summarize the conversation.",
]


def one_request(client: openai.OpenAI, model: str, index: int, max_tokens: int) -> dict:
    started = time.perf_counter()
    stream = index % 2 == 0
    try:
        kwargs = dict(
            model=model,
            messages=[{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}],
            max_tokens=max_tokens,
            temperature=0.7,
            seed=index,
        )
        if stream:
            tokens = 0
            first = None
            with client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **kwargs
            ) as s:
                for chunk in s:
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter() - started
                    if chunk.usage:
                        tokens = chunk.usage.completion_tokens
        else:
            response = client.chat.completions.create(**kwargs)
            tokens = response.usage.completion_tokens
            first = None
        return {
            "status": 200,
            "seconds": time.perf_counter() - started,
            "tokens": tokens,
            "ttft": first,
        }
    except openai.APIStatusError as exc:
        return {
            "status": exc.status_code,
            "seconds": time.perf_counter() - started,
            "error": str(exc)[:200],
        }
    except Exception as exc:  # noqa: BLE001 - a failure to report, not to raise
        return {
            "status": "error",
            "seconds": time.perf_counter() - started,
            "error": f"{type(exc).__name__}: {exc}"[:200],
        }


def run(
    url: str, api_key: str, requests: int, clients: int, max_tokens: int, time_limit: float
) -> dict:
    client = openai.OpenAI(
        base_url=url, api_key=api_key or "none", max_retries=0, timeout=time_limit
    )
    model = client.models.list().data[0].id
    results: list[dict] = []
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit
    started = time.perf_counter()

    def worker(index: int) -> None:
        if time.monotonic() > deadline:
            result = {"status": "skipped", "seconds": 0.0}
        else:
            result = one_request(client, model, index, max_tokens)
        with lock:
            results.append(result)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, range(requests)))
    wall = time.perf_counter() - started

    health = httpx2.get(url.removesuffix("/v1") + "/health", timeout=10)
    after = one_request(client, model, 0, max_tokens)
    ok = [r for r in results if r["status"] == 200]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    latencies = sorted(r["seconds"] for r in ok)
    ttfts = sorted(r["ttft"] for r in ok if r.get("ttft") is not None)
    tokens = sum(r["tokens"] for r in ok)
    clean = all(r["status"] in (200, 429, 503) for r in results)
    return {
        "requests": requests,
        "clients": clients,
        "max_tokens": max_tokens,
        "wall_s": round(wall, 2),
        "statuses": statuses,
        "every_request_answered_or_cleanly_rejected": clean,
        "answered_per_s": round(len(ok) / wall, 2),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3)
        if latencies
        else None,
        "ttft_p50_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "healthy_after": health.status_code == 200
        and health.json()["queue"]["running"] == 0
        and after["status"] == 200,
        "queue_after": health.json().get("queue"),
        "errors": [
            r["error"] for r in results if r["status"] not in (200, 429, 503) and "error" in r
        ][:5],
    }


@contextlib.contextmanager
def serve(model: str, api_key: str, max_waiting: int):
    """Our server on a free 127.0.0.1 port, serving `model` from an engine service here."""
    from app.engine_service import EngineService
    from app.engines.contract import LocalModel
    from app.server import ServerConfig, ServerThread

    service = EngineService()
    try:
        load = service.load(LocalModel(model, context_length=4096, tuning={"apply_limits": False}))
        load.wait()
        if load.error is not None:
            raise SystemExit(load.error.message)
        config = ServerConfig(host="127.0.0.1", port=0, api_key=api_key, max_waiting=max_waiting)
        with ServerThread(service, config) as server:
            yield server
    finally:
        service.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="an already running server (default: start one in this process)"
    )
    parser.add_argument("--api-key", default="")
    parser.add_argument("--model", help="checkpoint folder to serve (default: a tiny random one)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--max-waiting", type=int, default=4, help="queue depth of the started server"
    )
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--time-limit", type=float, default=120.0, help="seconds; later requests are skipped"
    )
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint

            model = args.model
            if model is None:
                model = str(
                    write_tiny_checkpoint(
                        stack.enter_context(tempfile.TemporaryDirectory()), seed=0
                    )
                )
            server = stack.enter_context(serve(model, args.api_key, args.max_waiting))
            url = server.url
        report = run(
            url, args.api_key, args.requests, args.clients, args.max_tokens, args.time_limit
        )
    report["max_waiting"] = args.max_waiting if args.url is None else None
    print(json.dumps(report, indent=2))
    s = report["statuses"]
    print(
        f"| {args.requests} req / {args.clients} clients | max_waiting {report['max_waiting']} | "
        f"{s.get('200', 0)} answered, {s.get('429', 0)} × 429, {s.get('503', 0)} × 503 | "
        f"{report['wall_s']} s | p50 {report['latency_p50_s']} s, p95 {report['latency_p95_s']} s | "
        f"{report['completion_tokens_per_s']} tok/s | healthy after: {report['healthy_after']} |"
    )
    return (
        0 if report["every_request_answered_or_cleanly_rejected"] and report["healthy_after"] else 1
    )


if __name__ == "__main__":
    sys.exit(main())
