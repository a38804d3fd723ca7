"""The hashing pool the parent of API_WORKERS > 1 workers runs for all of them (`app.passwords.pool`):
every worker's jobs queue in one place, so a worker holding most of the logins in flight hashes on every
thread instead of its own share.

In process: a real pool on a real Unix socket and workers' hashers talking to it. Then the real `serve()`
with two workers in a process of its own, over real HTTP: the hashing is done by the parent."""

import asyncio
import os
import signal
import socket
import stat
import struct
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.passwords.argon2id import Argon2id
from app.passwords.hashing import HashingPoolLost, PasswordHasher
from app.passwords.pool import MAX_FIELD_BYTES, POOL_ENVIRONMENT_VARIABLE, HashingPool, pool_threads
from tests.auth.helpers import PASSWORD, unique_email
from tests.conftest import make_settings
from tests.servers import ApiProcess

POOL_THREADS = 2


def two_workers() -> Settings:
    """Settings of an API with two workers of one hashing thread each: a pool of POOL_THREADS."""
    return make_settings(API_WORKERS=2, PASSWORD_HASH_WORKERS=1)


@pytest.fixture
def pool() -> Iterator[HashingPool]:
    shared = HashingPool(two_workers(), pool_threads(two_workers()))
    assert shared.threads == POOL_THREADS
    yield shared
    shared.close()


@pytest.fixture
async def worker(pool: HashingPool) -> AsyncIterator[PasswordHasher]:
    """A worker's hasher that sends its jobs to `pool`, its start-up hash done."""
    hasher = PasswordHasher(two_workers(), pool=pool.path)
    await hasher.warm_up()
    yield hasher
    hasher.shutdown()


async def test_a_worker_hashes_and_verifies_through_the_shared_pool_as_on_its_own_threads(
    worker: PasswordHasher,
) -> None:
    assert worker.max_workers == POOL_THREADS
    password_hash = await worker.hash(PASSWORD)
    local = Argon2id(two_workers())
    assert local.verify(password_hash, PASSWORD.encode())  # the pool made a real argon2id hash
    assert not local.needs_rehash(password_hash)
    assert await worker.verify(password_hash, PASSWORD)
    assert not await worker.verify(password_hash, PASSWORD + "x")
    assert not await worker.verify("not a hash", PASSWORD)
    assert not await worker.verify("é" + password_hash, PASSWORD)  # not ASCII: no hash, no error
    odd = "lone \ud800 surrogate and a long tail " * 200  # 7 KB, one unpaired surrogate
    assert await worker.verify(await worker.hash(odd), odd)
    assert worker.finished == 8  # the warm-up's hash and the seven above


async def test_two_workers_share_one_pool_and_every_job_is_answered_to_the_worker_that_sent_it(
    pool: HashingPool,
) -> None:
    settings = two_workers()
    workers = [PasswordHasher(settings, pool=pool.path) for _ in range(2)]
    try:
        passwords = [[f"{PASSWORD}-{worker}-{job}" for job in range(4)] for worker in range(2)]
        hashes = await asyncio.gather(
            *(workers[w].hash(password) for w in range(2) for password in passwords[w])
        )
        checks = [(w, pw, hashes[4 * w + j]) for w in range(2) for j, pw in enumerate(passwords[w])]
        # Each hash checked by the other worker: right and wrong passwords, all at once.
        results = await asyncio.gather(
            *(workers[1 - w].verify(password_hash, password) for w, password, password_hash in checks),
            *(workers[1 - w].verify(password_hash, password + "!") for w, password, password_hash in checks),
        )
        assert results == [True] * 8 + [False] * 8
    finally:
        for worker in workers:
            worker.shutdown()


def test_the_pools_socket_is_reachable_by_its_own_user_only(pool: HashingPool) -> None:
    directory = Path(pool.path).parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(Path(pool.path).stat().st_mode)
    pool.close()
    assert not directory.exists()


async def test_a_job_the_pool_cannot_answer_is_refused_with_503_and_leaves_nothing_queued(
    pool: HashingPool, worker: PasswordHasher
) -> None:
    pool.close()
    with pytest.raises(HashingPoolLost) as refused:
        await worker.hash(PASSWORD)
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": "1"}
    assert not worker.is_full and worker.queue_depth == 0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pool_named_to(pid: int) -> str | None:
    """The hashing pool's socket as process `pid`'s environment names it (None: it names none)."""
    prefix = POOL_ENVIRONMENT_VARIABLE.encode() + b"="
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode()
    return None


def _costly_hashing_server(settings: Settings, tmp_path: Path) -> ApiProcess:
    """Two workers hashing at 64 MiB, t=3 (about 0.1 s of CPU a hash), so that the hashing outweighs
    everything else a registration costs."""
    return ApiProcess(settings, tmp_path, workers=2, ARGON2_MEMORY_KIB="65536", ARGON2_TIME_COST="3")


def _register(server: ApiProcess) -> httpx.Response:
    """One registration over a new connection (the kernel picks the worker that accepts it)."""
    url = f"http://127.0.0.1:{server.public_port}/auth/register"
    return httpx.post(url, json={"email": unique_email(), "password": PASSWORD}, timeout=30)


def _assert_the_parent_hashes(server: ApiProcess, registrations: int = 8) -> None:
    """`registrations` registrations, each over a new connection so that both workers get some: the
    parent's CPU time grows by more than twice both workers' together (with hashing threads of their own,
    the workers would spend it)."""
    processes = (server.process.pid, *server.worker_pids())
    before = {pid: _cpu_seconds(pid) for pid in processes}
    for _ in range(registrations):
        response = _register(server)
        assert response.status_code == 201, response.text
    spent = {pid: _cpu_seconds(pid) - before[pid] for pid in processes}
    assert spent[server.process.pid] > 2 * sum(spent[pid] for pid in processes[1:]), spent


def test_with_two_workers_the_parent_hashes_for_both_and_the_workers_do_not(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    server = _costly_hashing_server(settings, tmp_path)
    try:
        server.wait_until_started(workers=2)
        workers = server.worker_pids()
        assert len(workers) == 2
        for pid in workers:  # the parent named its pool to each worker
            assert (_pool_named_to(pid) or "").startswith("/"), pid
        _assert_the_parent_hashes(server)
    finally:
        server.stop()
    assert "hashing pool: 2 threads shared by the workers" in "".join(server.log)


def test_a_worker_killed_with_jobs_in_the_pool_is_replaced_by_one_that_hashes_there_and_the_pool_serves_on(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    # Six costly registrations at once on two pool threads: when one worker is killed, jobs of both
    # workers are queued in the pool or being hashed there.
    server = _costly_hashing_server(settings, tmp_path)

    def register() -> int | None:
        try:
            return _register(server).status_code
        except httpx.TransportError:  # answered by the worker that was killed
            return None

    try:
        server.wait_until_started(workers=2)
        first = server.worker_pids()
        victim = first[0]
        with ThreadPoolExecutor(max_workers=6) as clients:
            flood = [clients.submit(register) for _ in range(6)]
            time.sleep(0.3)  # the first jobs are in the pool
            os.kill(victim, signal.SIGKILL)
            answers = [future.result() for future in flood]
        # Every registration the surviving worker took was hashed by the pool and answered; only the
        # killed worker's connections went unanswered.
        assert all(status in (201, None) for status in answers), answers
        assert 201 in answers, answers
        server.wait_until_started(workers=3)  # the replacement's startup
        workers = server.worker_pids()
        assert victim not in workers and len(workers) == 2
        assert len(set(workers) - set(first)) == 1  # the replacement
        for pid in workers:
            assert (_pool_named_to(pid) or "").startswith("/"), pid
        _assert_the_parent_hashes(server)  # new connections: the replacement gets its share
    finally:
        server.stop()
    assert any(f"worker [{victim}] died" in line for line in server.log), server.log


def test_without_a_place_for_the_pools_socket_each_worker_hashes_on_its_own_and_says_so(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    # A temporary directory whose path is too long for a Unix socket's address (108 bytes): binding fails.
    too_long, metrics = tmp_path / ("t" * 100), tmp_path / "metrics"
    too_long.mkdir()
    metrics.mkdir()
    server = ApiProcess(settings, metrics, workers=2, TMPDIR=str(too_long))
    try:
        server.wait_until_started(workers=2)
        for pid in server.worker_pids():
            assert _pool_named_to(pid) is None, pid
        response = _register(server)
        assert response.status_code == 201, response.text
    finally:
        server.stop()
    assert "each worker hashes on threads of its own" in "".join(server.log)
    assert list(too_long.iterdir()) == []  # the pool's directory was removed again


@pytest.mark.parametrize(
    "message",
    [
        b"x" + struct.pack("!II", 3, 0) + b"abc",  # no such operation
        b"h" + struct.pack("!II", MAX_FIELD_BYTES + 1, 0),  # a field over the bound
        b"v" + struct.pack("!II", 10, 5) + b"short",  # the connection ends inside the job
        b"h\x00\x00",  # ... or inside its header
    ],
)
async def test_a_malformed_job_closes_its_connection_and_the_pool_serves_on(
    pool: HashingPool, worker: PasswordHasher, message: bytes
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.connect(pool.path)
        raw.sendall(message)
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(10)
        assert raw.recv(64) == b""  # no answer: the connection is closed
    assert await worker.verify(await worker.hash(PASSWORD), PASSWORD)
