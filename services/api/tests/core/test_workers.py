"""API_WORKERS > 1 (`app.core.workers`): each worker accepts the public port on a listening socket of its
own (SO_REUSEPORT), so the kernel spreads new connections over the workers instead of letting whichever
is in `accept` take them all; the parent holds every socket, and a worker that dies is replaced on its
own, so connections that arrive meanwhile wait for the replacement instead of being refused.

The server is `python -m app`'s `serve()` in a process of its own, over real HTTP and real sockets."""

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.workers import STARTUP_FAILURE
from tests.servers import (
    ESTABLISHED,
    LISTENING,
    LOOPBACK_TLS,
    STARTUP_TIMEOUT,
    ApiProcess,
    free_port,
    sockets_on,
)

WORKERS = 2
CONNECTIONS = 16


def _sockets_held(pid: int) -> set[str]:
    """The inodes of every socket process `pid` has open."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().name if fd.is_symlink() else ""
        if target.startswith("socket:["):
            held.add(target.removeprefix("socket:[").removesuffix("]"))
    return held


@contextmanager
def _started(settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    """The server with WORKERS workers, once each has started and listens; stopped (SIGTERM) when the block
    ends."""
    server = ApiProcess(settings, tmp_path, workers=WORKERS)
    try:
        server.wait_until_started(workers=WORKERS)
        yield server
    finally:
        server.stop()


@contextmanager
def _keep_alive_connections(port: int) -> Iterator[None]:
    """CONNECTIONS connections to the public port, opened at once (a client and a thread each), each with
    its first request answered; closed when the block ends."""
    clients = [
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, verify=LOOPBACK_TLS)
        for _ in range(CONNECTIONS)
    ]
    try:
        with ThreadPoolExecutor(CONNECTIONS) as threads:
            statuses = list(threads.map(lambda client: client.get("/health/live").status_code, clients))
        assert statuses == [200] * CONNECTIONS
        yield
    finally:
        for client in clients:
            client.close()


def test_each_worker_accepts_on_a_listening_socket_of_its_own_and_keep_alive_connections_spread(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    with _started(settings, tmp_path) as server:
        listening = sockets_on(server.public_port, LISTENING)
        first, second = server.worker_pids()
        mine = {pid: _sockets_held(pid) & listening for pid in (first, second)}
        parent_holds = _sockets_held(server.process.pid) & listening
        with _keep_alive_connections(server.public_port):
            accepted = sockets_on(server.public_port, ESTABLISHED)
            connections = {pid: len(_sockets_held(pid) & accepted) for pid in (first, second)}

    assert len(listening) == WORKERS, server.log
    assert len(mine[first]) == len(mine[second]) == 1
    assert mine[first] != mine[second]
    assert parent_holds == listening
    # The kernel hashes each connection to one of the sockets: one worker gets none of 16 with a
    # probability of 2 in 65,536.
    assert sum(connections.values()) == CONNECTIONS, connections
    assert min(connections.values()) > 0, connections
    assert server.process.returncode == 0, server.log


def test_a_worker_that_dies_is_replaced_on_its_own_socket_and_no_connection_is_refused_meanwhile(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    with _started(settings, tmp_path) as server:
        listening = sockets_on(server.public_port, LISTENING)
        dead, survivor = server.worker_pids()
        its_socket = _sockets_held(dead) & listening
        os.kill(dead, signal.SIGKILL)
        # Opened at once, before the replacement is up: about half are hashed to the dead worker's socket,
        # where they wait in its queue.
        with _keep_alive_connections(server.public_port):
            server.wait_until_started(workers=WORKERS + 1)
            replacement = (set(server.worker_pids()) - {survivor}).pop()
            replacement_holds = _sockets_held(replacement) & listening
            by_replacement = len(_sockets_held(replacement) & sockets_on(server.public_port, ESTABLISHED))
        listening_after = sockets_on(server.public_port, LISTENING)

    assert replacement != dead
    assert replacement_holds == its_socket
    # It holds the connections that waited on its socket: the survivor cannot accept from it.
    assert by_replacement > 0
    assert listening_after == listening
    assert any(f"worker [{dead}] died" in line for line in server.log), server.log
    assert server.process.returncode == 0, server.log


def test_workers_that_cannot_start_the_app_stop_the_parent_with_uvicorns_startup_failure_status(
    settings: Settings, tmp_path: Path
) -> None:
    """Replacing them would fail the same way for ever: the parent exits 3, as one worker does."""
    unreachable = settings.database_url.set(host="127.0.0.1", port=free_port())
    server = ApiProcess(
        settings,
        tmp_path,
        workers=WORKERS,
        DATABASE_URL=unreachable.render_as_string(hide_password=False),
        DB_STARTUP_TIMEOUT="0",
    )
    try:
        server.process.wait(timeout=STARTUP_TIMEOUT)
    finally:
        server.stop()

    assert server.process.returncode == STARTUP_FAILURE, server.log
    assert any("could not start the app: stopping" in line for line in server.log), server.log


def test_sighup_replaces_each_worker_on_its_own_socket_and_sigttin_is_ignored(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    with _started(settings, tmp_path) as server:
        listening = sockets_on(server.public_port, LISTENING)
        before = {pid: _sockets_held(pid) & listening for pid in server.worker_pids()}
        server.process.send_signal(signal.SIGTTIN)  # its default would stop the parent
        server.process.send_signal(signal.SIGHUP)
        server.wait_until_started(workers=2 * WORKERS)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while set(server.worker_pids()) & set(before):  # the last predecessor is stopping
            assert time.monotonic() < deadline, server.log
            time.sleep(0.1)
        after = {pid: _sockets_held(pid) & listening for pid in server.worker_pids()}
        with _keep_alive_connections(server.public_port):
            pass  # all answered

    assert len(after) == WORKERS
    assert sorted(map(sorted, after.values())) == sorted(map(sorted, before.values()))
    assert any("SIGTTIN ignored" in line for line in server.log), server.log
    assert server.process.returncode == 0, server.log
