"""One hashing pool for all API workers: with API_WORKERS > 1 the parent process hashes for every worker.

Each worker used to hash on threads of its own, so a worker holding more of the logins in flight than its
siblings queued them on its own threads while theirs idled: with a socket per worker the kernel splits
connections blind to load (`make bench`'s open-loop logins once went 268 / 502, the busier worker's
thread took 65 % of them and the p99 missed its target). Here the parent runs the pool, API_WORKERS
times the hashing threads of one worker in all, first come first served, and every worker's jobs queue
there.

The parent listens on a Unix socket in a directory only its user can enter (the passwords cross it) and
names it to its workers in PYAUTH_HASHING_POOL, set before they are spawned: a handoff between the two
processes, like systemd's LISTEN_FDS, not a setting. A worker sends each job over a connection of its
own per sending thread (`PoolConnection`), one job at a time, and as many threads as the pool has, so a
worker alone can keep every hashing thread busy and none can hold more than that in the queue ahead of
a sibling. The wire format is fixed-size headers and raw bytes, parsed by hand: nothing is unpickled.

The argon2id parameters, the niceness and the memory bound (ASVS 15.2.2: at most the pool's threads
hash at once) are the workers' own settings, read by the parent from the same environment.
"""

import contextlib
import logging
import os
import socket
import struct
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from app.core.config import Settings
from app.passwords.argon2id import THREAD_NAME_PREFIX, Argon2id, lower_priority

POOL_ENVIRONMENT_VARIABLE = "PYAUTH_HASHING_POOL"

HASH, VERIFY = b"h", b"v"
OK, FAILED = 0, 1
_REQUEST = struct.Struct("!cII")  # operation, length of the password, length of the hash
_REPLY = struct.Struct("!BI")  # status, length of the payload
MAX_FIELD_BYTES = 1 << 20  # far above any password or hash the API accepts

log = logging.getLogger("pyauth.passwords.pool")


class PoolUnavailable(Exception):
    """The pool did not answer a job: its connection failed or closed."""


def pool_threads(settings: Settings) -> int:
    """Hashing threads of the shared pool: as many as all workers had on their own."""
    return settings.api_workers * settings.password_hash_threads


def pool_from_environment() -> str | None:
    """The shared pool's socket path when this process is a worker of a parent that runs one."""
    return os.environ.get(POOL_ENVIRONMENT_VARIABLE) or None


class HashingPool:
    """The parent's side: accepts the workers' connections and runs their jobs on `threads` threads."""

    def __init__(self, settings: Settings, threads: int) -> None:
        self._argon2id = Argon2id(settings)
        self.threads = threads
        self._executor = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix=THREAD_NAME_PREFIX,
            initializer=lower_priority,
            initargs=(settings.PASSWORD_HASH_NICE,),
        )
        self._directory = tempfile.mkdtemp(prefix="pyauth-hashing-")  # mode 0700
        self.path = os.path.join(self._directory, "pool.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.bind(self.path)
            self._listener.listen(64)
        except OSError:
            self._listener.close()
            os.rmdir(self._directory)
            raise
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="hashing-pool-accept", daemon=True).start()
        log.info("hashing pool: %d threads shared by the workers", threads)

    def export(self) -> None:
        """Name the pool to the workers spawned from now on."""
        os.environ[POOL_ENVIRONMENT_VARIABLE] = self.path

    def close(self) -> None:
        """Stop accepting, drop waiting jobs, let running ones finish, remove the socket. Safe twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        os.environ.pop(POOL_ENVIRONMENT_VARIABLE, None)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self._directory)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(connection,), name="hashing-pool", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        """One worker thread's jobs, one at a time, until it closes the connection."""
        with connection, connection.makefile("rb") as reader:
            while True:
                try:
                    job = _read_request(reader)
                except (OSError, ValueError):
                    return
                if job is None:
                    return
                try:
                    status, payload = self._executor.submit(self._run, *job).result()
                except Exception:  # the pool is closing (a cancelled job), or argon2 itself failed
                    status, payload = FAILED, b""
                try:
                    connection.sendall(_REPLY.pack(status, len(payload)) + payload)
                except OSError:
                    return

    def _run(self, operation: bytes, password: bytes, password_hash: bytes) -> tuple[int, bytes]:
        if operation == HASH:
            return OK, self._argon2id.hash(password).encode("ascii")
        matched = self._argon2id.verify(password_hash.decode("ascii", "replace"), password)
        return OK, b"1" if matched else b"0"


class PoolConnection:
    """A worker's side: one connection per calling thread (they are the worker's job threads), each
    sending one job and waiting for its answer. A failed connection is dropped and made again for the
    next job; a job whose connection fails raises `PoolUnavailable` (the caller answers 503)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def hash(self, password: bytes) -> str:
        return self._call(HASH, password, b"").decode("ascii")

    def verify(self, password_hash: str, password: bytes) -> bool:
        if not password_hash.isascii():  # as Argon2id.verify: no such hash can match
            return False
        return self._call(VERIFY, password, password_hash.encode("ascii")) == b"1"

    def _call(self, operation: bytes, password: bytes, password_hash: bytes) -> bytes:
        try:
            connection, reader = self._connection()
            header = _REQUEST.pack(operation, len(password), len(password_hash))
            connection.sendall(header + password + password_hash)
            status, length = _REPLY.unpack(_read_exactly(reader, _REPLY.size))
            payload = _read_exactly(reader, length)
        except (OSError, ValueError) as exc:
            self._drop()
            raise PoolUnavailable(str(exc)) from exc
        if status != OK:
            self._drop()
            raise PoolUnavailable("the hashing pool could not run the job")
        return payload

    def _connection(self) -> tuple[socket.socket, BinaryIO]:
        held = getattr(self._local, "held", None)
        if held is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(self.path)
            except OSError:
                connection.close()
                raise
            held = self._local.held = (connection, connection.makefile("rb"))
        return held

    def _drop(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held[1].close()
            held[0].close()


def _read_request(reader: BinaryIO) -> tuple[bytes, bytes, bytes] | None:
    """The next job on a connection, or None at its end. ValueError on anything malformed."""
    first = reader.read(1)
    if not first:
        return None
    header = first + _read_exactly(reader, _REQUEST.size - 1)
    operation, password_length, hash_length = _REQUEST.unpack(header)
    if operation not in (HASH, VERIFY) or max(password_length, hash_length) > MAX_FIELD_BYTES:
        raise ValueError("malformed job")
    return operation, _read_exactly(reader, password_length), _read_exactly(reader, hash_length)


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    """`size` bytes of a message; ValueError if the connection ends inside it (a buffered `read` returns
    fewer only at the end)."""
    data = reader.read(size)
    if len(data) < size:
        raise ValueError("the connection ended inside a message")
    return data
