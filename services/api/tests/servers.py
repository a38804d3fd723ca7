"""Real HTTP servers for tests: an ASGI app served by uvicorn on a loopback socket of its own, so that a
client (a resource-server library, a browser, PyJWT's JWKS client) reaches it over a real connection; and
pyauth served as `python -m app` serves it, in a process of its own (`serve_in_process`, `ApiProcess`)."""

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from app.core.config import Settings
from app.metrics import exposition
from tests.cli import cli_environment

# httpx builds a TLS context for every client it makes unless given one: it loads the CA bundle, 30-110 ms
# of CPU a client (the resource tests make about a hundred). The servers here speak plain HTTP on loopback,
# so their clients share this one (`httpx.AsyncClient(verify=LOOPBACK_TLS, ...)`).
LOOPBACK_TLS = ssl.create_default_context()


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"http://{host}:{port}"


def free_port() -> int:
    """A loopback port nothing listens on now, for a server process to bind."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The whole environment of a server process on the test database: a CLI's (`cli_environment`: the
    settings' database and key, test mode) with INFO logs, a small pool and one hashing thread; then
    `extra`."""
    return {
        **cli_environment(settings),
        "LOG_LEVEL": "INFO",
        "DB_POOL_SIZE": "2",
        "PASSWORD_HASH_WORKERS": "1",
        **extra,
    }


def serve_in_process(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m tests.metrics.server_process PORT` (the same `serve()` as `python -m app`, on
    127.0.0.1:PORT) with exactly `env`, in a process group of its own; its log on the pipe `stderr`."""
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "tests.metrics.server_process", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


STARTUP_TIMEOUT = 60.0
LISTENING, ESTABLISHED = "0A", "01"  # the state column of /proc/net/tcp


def sockets_on(port: int, state: str) -> set[str]:
    """The inodes of the sockets on 127.0.0.1:`port` in `state` in this network namespace: listening, or
    accepted and established."""
    local = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == state:
            inodes.add(fields[9])
    return inodes


class ApiProcess:
    """`serve_in_process` with `workers` workers, the metrics on a port of their own (their files in
    `metrics_dir`), no rate limits and the `extra` environment; its log collected in `log`."""

    def __init__(self, settings: Settings, metrics_dir: Path, *, workers: int, **extra: str) -> None:
        self.public_port, self.metrics_port = free_port(), free_port()
        env = server_environment(
            settings,
            RATE_LIMITS_ENABLED="false",
            API_WORKERS=str(workers),
            METRICS_PORT=str(self.metrics_port),
            **{exposition.MULTIPROCESS_DIR_VARIABLE: str(metrics_dir)},
            **extra,
        )
        self.workers = workers
        self.process = serve_in_process(self.public_port, env)
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def wait_until_started(self, workers: int) -> None:
        """Until `workers` lifespan startups (the first workers', and any replacement's) have completed and
        the public port has a listening socket per worker. A worker logs its startup before its server calls
        `listen` (and uvicorn logs nothing after it when given its sockets), so the sockets' state tells."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (
            sum("Application startup complete" in line for line in self.log) < workers
            or len(sockets_on(self.public_port, LISTENING)) < self.workers
        ):
            assert self.process.poll() is None, "".join(self.log)
            assert time.monotonic() < deadline, "".join(self.log)
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        """The uvicorn workers: the children spawned by multiprocessing, not its resource tracker."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        workers = []
        for child in children:
            with_args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if any(b"spawn_main" in arg for arg in with_args):
                workers.append(int(child))
        return workers

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the parent ends its workers gracefully
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this test started
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)


@asynccontextmanager
async def serving(app: ASGIApp, sock: socket.socket) -> AsyncIterator[str]:
    """`app` served by uvicorn on `sock` (its lifespan, if any, run by the caller); yields its URL."""
    # Keep-alive well past any test's length: a connection the server closes just as the library reuses it
    # costs a retried GET, which would count as a second fetch in the tests that count them.
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, timeout_keep_alive=300)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
