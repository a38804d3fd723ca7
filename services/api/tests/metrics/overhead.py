"""What request metrics cost: `python -m tests.metrics.overhead [--requests N] [--rounds R]`.

Calls the real app's ASGI interface in-process with GET /health/live (no server, no socket, no database,
so the middleware's share is as large as it can be), with METRICS_ENABLED on and off, in interleaved
rounds so that drift on a shared machine hits both alike, counting this process's CPU time. It runs once
with the default in-memory registry, then in a child process with PROMETHEUS_MULTIPROC_DIR set (values
in mmap files).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from starlette.types import ASGIApp, Message

from app.main import create_app
from app.metrics import exposition
from tests.conftest import make_settings

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/health/live",
    "raw_path": b"/health/live",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    if message["type"] == "http.response.start":
        assert message["status"] == 200


async def rate(app: ASGIApp, requests: int) -> float:
    """Requests per CPU second of this process, over `requests` sequential calls: CPU time rather than
    wall time, so that other load on the machine does not count."""
    started = time.process_time()
    for _ in range(requests):
        await app(dict(SCOPE), receive, send)
    return requests / (time.process_time() - started)


async def measure(requests: int, rounds: int) -> None:
    apps = {"off": create_app(make_settings(METRICS_ENABLED=False)), "on": create_app(make_settings())}
    for app in apps.values():
        await rate(app, 2000)  # warm-up: builds the middleware stack, resolves the labelled series
    rates: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            rates[name].append(await rate(app, requests))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    mode = "multiprocess (mmap files)" if exposition.MULTIPROCESS_DIR else "single process (in memory)"
    print(f"{mode}: {rounds} rounds of {requests} GET /health/live, median requests per CPU second")
    print(f"  metrics off {off:9.0f}/s  {1e6 / off:6.1f} µs/request")
    print(f"  metrics on  {on:9.0f}/s  {1e6 / on:6.1f} µs/request")
    print(f"  cost {1e6 / on - 1e6 / off:+.1f} µs/request ({on / off - 1:+.1%} throughput)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--single", action="store_true", help="only this process's mode")
    args = parser.parse_args()
    asyncio.run(measure(args.requests, args.rounds))
    if args.single or exposition.MULTIPROCESS_DIR:
        return
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "tests.metrics.overhead", "--single", *sys.argv[1:]],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, exposition.MULTIPROCESS_DIR_VARIABLE: directory},
            check=True,
        )


if __name__ == "__main__":
    main()
