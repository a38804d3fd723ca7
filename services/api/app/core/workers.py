"""The parent of API_WORKERS uvicorn workers, each accepting on a listening socket of its own.

uvicorn's own supervisor hands every worker the same listening socket, and whichever worker is in `accept`
takes every connection waiting there: a few keep-alive connections opened at once (a proxy's upstream
pool, a load generator) can all land on one worker and leave the other cores idle (16 opened at once to
an idle 2-worker API: 16/0 in one of six tries). Here the parent binds one socket per worker on the same
address with `SO_REUSEPORT`, and the kernel hashes each new connection to one of them: an even share on
average, and blind to load. Connections opened one after another, which at a shared socket the idle worker
wins one by one, split as the hash falls (16 of them 5/11 to 7/9 where a shared socket gave 8/8 or 7/9;
the README's `API_WORKERS` row has the measurements).

The parent keeps every socket open for the life of the server. A worker that dies, or stops answering the
parent's ping for `timeout_worker_healthcheck` seconds and is killed, is replaced on its own socket:
connections the kernel hashed there meanwhile wait in its queue for the replacement instead of being
refused. The price of the hashing: a stalled worker's share of new connections waits with it until it is
replaced, where a shared socket would have let its siblings take them.

A worker is uvicorn's own worker process (`uvicorn.supervisors.multiprocess.Process`: spawned, pinged over
a pipe, its server run on the sockets given); this module only decides which sockets each one gets and
keeps them running. SIGTERM and SIGINT stop every worker gracefully; SIGHUP replaces them one by one, each
replacement ready before its predecessor is stopped; SIGTTIN and SIGTTOU, with which uvicorn's parent adds
and removes a worker, are logged and ignored (their default would stop the parent).
"""

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from types import FrameType

import uvicorn
from uvicorn.supervisors.multiprocess import Process

STARTUP_FAILURE = 3  # uvicorn's exit status when the app could not start
SUPERVISION_INTERVAL_SECONDS = 0.5

log = logging.getLogger("pyauth.workers")


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port for the workers to listen on (they call `listen`), as uvicorn binds
    its own: SO_REUSEADDR, inheritable; with `reuse_port`, one of a group bound with SO_REUSEPORT."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def bind_worker_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to host:port with SO_REUSEPORT, one per worker. Binding fails, as a single
    socket's would, when something else holds the port without SO_REUSEPORT."""
    return [bind_socket(host, port, reuse_port=True) for _ in range(count)]


class Workers:
    """`len(public_sockets)` workers: worker i accepts on public_sockets[i] and on every shared socket."""

    def __init__(
        self, config: uvicorn.Config, public_sockets: Sequence[socket.socket], shared: Sequence[socket.socket]
    ) -> None:
        self.config = config
        self.sockets = [[public, *shared] for public in public_sockets]
        self.processes: list[Process] = []
        self.should_exit = threading.Event()
        self.startup_failed = False
        self._signals: list[int] = []

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit status: 0, or STARTUP_FAILURE if a worker could not
        start its app (it would fail the same way every time it was replaced)."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, self._queue_signal)
        workers = len(self.sockets)
        log.info("parent process [%d]: %d workers, each on a socket of its own", os.getpid(), workers)
        self.processes = [self._start(index) for index in range(workers)]
        while not self.should_exit.wait(SUPERVISION_INTERVAL_SECONDS):
            self._handle_signals()
            self._replace_the_dead()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join()
        log.info("parent process [%d]: stopped", os.getpid())
        return STARTUP_FAILURE if self.startup_failed else 0

    def _start(self, index: int) -> Process:
        process = Process(self.config, self.sockets[index])
        process.start()
        return process

    def _queue_signal(self, sig: int, frame: FrameType | None) -> None:
        # Only noted here: the loop acts on it, outside the handler.
        self._signals.append(sig)

    def _handle_signals(self) -> None:
        while self._signals:
            sig = self._signals.pop(0)
            if sig == signal.SIGHUP:
                log.info("SIGHUP: replacing the workers one by one")
                self._replace_all()
            elif sig in (signal.SIGTTIN, signal.SIGTTOU):
                # uvicorn's parent adds or removes a worker; here each has a socket: set API_WORKERS.
                log.warning("%s ignored: the worker count is API_WORKERS", signal.Signals(sig).name)
            else:
                log.info("%s: stopping the workers", signal.Signals(sig).name)
                self.should_exit.set()

    def _replace_the_dead(self) -> None:
        for index, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # if it is alive, it is hung
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker [%d] could not start the app: stopping", process.pid)
                self.startup_failed = True
                self.should_exit.set()
                return
            log.warning("worker [%d] died (exit status %s): replacing it", process.pid, process.exitcode)
            self.processes[index] = self._start(index)

    def _replace_all(self) -> None:
        for index, old in enumerate(self.processes):
            new = self._start(index)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                log.error("worker [%d] was not ready in time: keeping [%d]", new.pid, old.pid)
                return
            old.terminate()
            old.join()
            self.processes[index] = new
