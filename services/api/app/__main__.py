"""`python -m app`: serve the API with uvicorn, logging configured from settings.

`server_options()` is the one description of how pyauth is served, and `run()` serves an app with them;
`make bench` serves its ceiling apps through both, so that they compare like with like.

`serve()` binds the listening sockets before any worker starts: the public port (8000) and, unless the
metrics are off or moved to the public port, METRICS_PORT (9000), which compose does not publish. With
more than one worker, each accepts on a public socket of its own (`app.core.workers`: the kernel spreads
new connections over them) and all of them on the one metrics socket, and the app tells the two apart by
the port a connection arrived on (`app.metrics.listener`). So a scrape is answered by a worker like any
request: it publishes its own gauges at that moment and merges every worker's files
(`app.metrics.exposition`); no extra server or process is needed. With more than one worker, this
process also hashes the passwords of all of them (`app.passwords.pool`): one queue, whichever worker
holds the login.

With SHUTDOWN_DRAIN_SECONDS and one worker (the Swarm stack), the first SIGTERM starts a drain instead of
the shutdown (`DrainingServer`): the health checks answer 503 and every request is still served, then
uvicorn's graceful shutdown runs. The edge proxy has taken the task out by then, so no request reaches a
connection the task is closing, and the proxy never needs to send a request again elsewhere.
"""

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any

import uvicorn

from app.core.config import PUBLIC_PORT, Settings, get_settings
from app.core.logging import logging_config
from app.core.workers import STARTUP_FAILURE, Workers, bind_socket, bind_worker_sockets
from app.health.draining import start_draining
from app.passwords.pool import HashingPool, pool_threads

LISTEN_HOST = "0.0.0.0"  # noqa: S104 - inside its container; compose publishes only the public port

log = logging.getLogger("pyauth.main")


WORKER_PING_TIMEOUT_SECONDS = 30


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options: `API_WORKERS` processes (one per core by default) on uvloop and httptools.

    Named rather than left to "auto", so that an image without them fails at start instead of quietly
    serving on the slower pure-Python loop and parser."""
    return {
        "host": LISTEN_HOST,  # compose publishes it on 127.0.0.1 only
        "port": PUBLIC_PORT,
        "workers": settings.api_workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": logging_config(settings, batched=True),
        # app.core.requests logs one line per request instead (without query strings).
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 20,
        # The parent pings each worker and kills one that does not answer within this bound. uvicorn's
        # 5 s default killed workers still importing the app on a loaded 2-core machine (an import takes
        # ~2 s of CPU), over and over, so the API never came up; a hung worker is still replaced.
        "timeout_worker_healthcheck": WORKER_PING_TIMEOUT_SECONDS,
    }


def bind_metrics_socket(settings: Settings, host: str = LISTEN_HOST) -> socket.socket | None:
    """The listening socket of METRICS_PORT; None without one."""
    port = settings.metrics_port
    if port is None:
        return None
    sock = bind_socket(host, port)  # one socket, every worker accepts on it
    log.info("metrics on http://%s:%d/metrics (not on the public port)", host, port)
    return sock


class DrainingServer(uvicorn.Server):
    """uvicorn's server, but the first SIGTERM drains for `drain_seconds` before the graceful shutdown
    begins. A second SIGTERM, or SIGINT, shuts down at once, as uvicorn does."""

    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._drain: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.drain_seconds <= 0 or self._drain is not None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        start_draining()
        # A signal handler only starts the drain: logging here could wait on a lock its own thread holds.
        self._drain = threading.Thread(target=self._drain_then_exit, args=(sig,), name="drain", daemon=True)
        self._drain.start()

    def _drain_then_exit(self, sig: int) -> None:
        log.info("SIGTERM: draining for %.1f s (the health checks answer 503)", self.drain_seconds)
        time.sleep(self.drain_seconds)
        # uvicorn's own handling: it notes the signal and sets `should_exit`, read by its loop every 0.1 s.
        super().handle_exit(sig, None)


def serve(settings: Settings, *, host: str = LISTEN_HOST, port: int = PUBLIC_PORT) -> None:
    """Serve the API on `port` and the metrics on METRICS_PORT, with settings.api_workers workers."""
    options = {**server_options(settings), "host": host, "port": port}
    config = uvicorn.Config("app.main:create_app", factory=True, **options)
    metrics_socket = bind_metrics_socket(settings, host)
    shared = [metrics_socket] if metrics_socket is not None else []
    pool = shared_hashing_pool(settings) if config.workers > 1 else None
    try:
        run(config, shared=shared, drain_seconds=settings.SHUTDOWN_DRAIN_SECONDS)
    finally:
        if pool is not None:
            pool.close()


def shared_hashing_pool(settings: Settings) -> HashingPool | None:
    """The hashing pool the workers about to be spawned will send their jobs to, named to them; None, and
    each worker hashes on threads of its own, where there is no place for its socket."""
    try:
        pool = HashingPool(settings, pool_threads(settings))
    except OSError as exc:  # no writable temporary directory, or its path too long for a Unix socket
        log.warning("no shared hashing pool (%s): each worker hashes on threads of its own", exc)
        return None
    pool.export()
    return pool


def run(
    config: uvicorn.Config, *, shared: list[socket.socket] | None = None, drain_seconds: float = 0
) -> None:
    """Serve `config`'s app on its host and port, and on the `shared` sockets: with one worker in this
    process (`DrainingServer`), with more each on a public socket of its own (`app.core.workers`). Exits
    with uvicorn's STARTUP_FAILURE status if the app could not start."""
    shared = shared or []
    if config.workers > 1:
        if drain_seconds:
            log.warning("SHUTDOWN_DRAIN_SECONDS applies to one worker (API_WORKERS=1): not draining")
        public = bind_worker_sockets(config.host, config.port, config.workers)
        log.info("serving on http://%s:%d", config.host, config.port)
        status = Workers(config, public, shared).run()
        if status:
            sys.exit(status)
        return
    server = DrainingServer(config, drain_seconds)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C in a terminal: uvicorn has shut down already
        server.run(sockets=[config.bind_socket(), *shared])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def main() -> None:
    serve(get_settings())


if __name__ == "__main__":
    main()
