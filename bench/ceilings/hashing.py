"""The argon2id ceiling of `make bench`: raw argon2-cffi hash and verify throughput with the parameters
pyauth is configured with, on as many threads as the API hashes on in all (its workers times each
worker's hashing threads), at the same niceness. Runs in the API image with the API's settings.

It serves one request at a time on port 8000, so that the driver can measure it right before the
scenarios it bounds: `GET /measure?operation=hash|verify&seconds=8` answers the throughput as JSON after
a one-second warm-up. The measuring happens in threads of this process, not over HTTP.
"""

import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import HTTPServer
from typing import Any

import argon2
from json_http import JsonHandler

from app.core.config import get_settings
from app.passwords.hashing import PasswordHasher

PASSWORD = b"bench-only passphrase 4711 quartz"
WARM_UP_SECONDS = 1.0


def throughput(operation: Callable[[], object], threads: int, seconds: float, nice: int) -> dict[str, float]:
    """Run `operation` in a loop on `threads` threads at niceness `nice` for `seconds`; operations per
    second."""
    counts = [0] * threads
    ends = [0.0] * threads
    start_line = threading.Barrier(threads + 1)
    deadline = [0.0]

    def loop(index: int) -> None:
        if nice:  # as the API's hashing threads run (PASSWORD_HASH_NICE)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        start_line.wait()
        done = 0
        while time.perf_counter() < deadline[0]:
            operation()
            done += 1
        counts[index] = done
        ends[index] = time.perf_counter()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    start_line.wait()
    for worker in workers:
        worker.join()
    elapsed = max(ends) - started
    return {"operations": sum(counts), "seconds": round(elapsed, 3), "per_second": sum(counts) / elapsed}


class Ceiling:
    def __init__(self) -> None:
        settings = get_settings()
        # The API's own hasher says how many threads one worker hashes on.
        api_hasher = PasswordHasher(settings)
        self.threads_per_worker = api_hasher.max_workers
        api_hasher.shutdown()
        self.api_workers = settings.api_workers
        self.threads = self.api_workers * self.threads_per_worker
        self.nice = settings.PASSWORD_HASH_NICE
        self.parameters = {
            "memory_kib": settings.ARGON2_MEMORY_KIB,
            "time_cost": settings.ARGON2_TIME_COST,
            "parallelism": settings.ARGON2_PARALLELISM,
        }
        self.hasher = argon2.PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_KIB,
            parallelism=settings.ARGON2_PARALLELISM,
            type=argon2.Type.ID,
        )
        self.stored = self.hasher.hash(PASSWORD)

    def hash_once(self) -> object:
        return self.hasher.hash(PASSWORD)

    def verify_once(self) -> object:
        return self.hasher.verify(self.stored, PASSWORD)

    def measure(self, operation: str, seconds: float) -> dict[str, Any]:
        run = self.hash_once if operation == "hash" else self.verify_once
        warm_up = throughput(run, self.threads, WARM_UP_SECONDS, self.nice)
        return {
            "warm_up_operations": warm_up["operations"],
            "operation": operation,
            "threads": self.threads,
            "api_workers": self.api_workers,
            "threads_per_worker": self.threads_per_worker,
            "parameters": self.parameters,
            "nice": self.nice,
            **throughput(run, self.threads, seconds, self.nice),
        }


class Handler(JsonHandler):
    ceiling: Ceiling

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path != "/measure" or query.get("operation") not in ("hash", "verify"):
            self.send_error(404)
            return
        seconds = min(float(query.get("seconds", "8")), 60.0)
        self.send_json(self.ceiling.measure(query["operation"], seconds))


def main() -> None:
    Handler.ceiling = Ceiling()
    HTTPServer(("0.0.0.0", 8000), Handler).serve_forever()  # noqa: S104 - inside its container


if __name__ == "__main__":
    main()
