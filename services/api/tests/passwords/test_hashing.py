"""argon2id hashing: parameters in the hash, rehash on raised cost, a bounded pool off the event loop."""

import asyncio
import os
import resource
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.passwords.argon2id import THREAD_NAME_PREFIX
from app.passwords.hashing import HashQueueFull, PasswordHasher

from .helpers import make_settings

PASSWORD = "glacier violin marmalade"


@pytest.fixture
def make_hasher() -> Iterator[Callable[..., PasswordHasher]]:
    hashers: list[PasswordHasher] = []

    def make(**overrides: Any) -> PasswordHasher:
        hasher = PasswordHasher(make_settings(**overrides))
        hashers.append(hasher)
        return hasher

    yield make
    for hasher in hashers:
        hasher.shutdown()


@pytest.fixture
def hasher(make_hasher: Callable[..., PasswordHasher]) -> PasswordHasher:
    return make_hasher()


async def test_a_hash_verifies_its_password_and_no_other(hasher: PasswordHasher) -> None:
    password_hash = await hasher.hash(PASSWORD)

    assert await hasher.verify(password_hash, PASSWORD) is True
    assert await hasher.verify(password_hash, PASSWORD.upper()) is False
    assert await hasher.verify(password_hash, "") is False


async def test_the_same_password_hashes_differently_each_time(hasher: PasswordHasher) -> None:
    assert await hasher.hash(PASSWORD) != await hasher.hash(PASSWORD)


async def test_a_hash_records_argon2id_and_its_parameters(hasher: PasswordHasher) -> None:
    password_hash = await hasher.hash(PASSWORD)
    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$h\u00e9sh",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    ],
)
async def test_verify_is_false_for_a_hash_it_cannot_read(hasher: PasswordHasher, garbage: str) -> None:
    assert await hasher.verify(garbage, PASSWORD) is False


async def test_a_lone_surrogate_at_login_fails_to_match_rather_than_raising(hasher: PasswordHasher) -> None:
    password_hash = await hasher.hash(PASSWORD)
    assert await hasher.verify(password_hash, "glacier \ud800") is False
    await hasher.verify_dummy("glacier \ud800")


async def test_needs_rehash_once_the_time_cost_is_raised(make_hasher: Callable[..., PasswordHasher]) -> None:
    current = make_hasher()
    password_hash = await current.hash(PASSWORD)
    assert current.needs_rehash(password_hash) is False

    raised = make_hasher(ARGON2_TIME_COST=3)
    assert raised.needs_rehash(password_hash) is True
    # The old hash still verifies, so that the login that finds it can rehash it.
    assert await raised.verify(password_hash, PASSWORD) is True
    assert raised.needs_rehash(await raised.hash(PASSWORD)) is False


def test_needs_rehash_for_a_hash_it_cannot_read(hasher: PasswordHasher) -> None:
    assert hasher.needs_rehash("not a hash") is True


async def test_warm_up_returns_once_the_start_up_hash_is_made_and_the_queue_is_empty(
    make_hasher: Callable[..., PasswordHasher],
) -> None:
    # A cost that keeps the start-up hash running for a while (~0.3 s of a core): returning early shows.
    hasher = make_hasher(ARGON2_TIME_COST=40)
    await hasher.warm_up()
    assert hasher.queue_depth == 0
    assert hasher.finished == 1
    await hasher.warm_up()  # again: at once, nothing more runs
    assert hasher.finished == 1


async def test_verify_dummy_runs_in_the_pool_and_raises_nothing(hasher: PasswordHasher) -> None:
    await hasher.verify_dummy(PASSWORD)
    await hasher.verify_dummy(PASSWORD)
    assert hasher.queue_depth == 0


def test_the_pool_has_the_configured_number_of_workers(make_hasher: Callable[..., PasswordHasher]) -> None:
    assert make_hasher(PASSWORD_HASH_WORKERS=3).max_workers == 3
    # 0: the cores divided among the uvicorn workers, so that all of them together use one thread per core.
    cores = os.cpu_count() or 1
    assert make_hasher(PASSWORD_HASH_WORKERS=0, API_WORKERS=1).max_workers == cores
    assert make_hasher(PASSWORD_HASH_WORKERS=0, API_WORKERS=cores).max_workers == 1
    assert make_hasher(PASSWORD_HASH_WORKERS=0, API_WORKERS=2 * cores).max_workers == 1


async def test_concurrent_hashes_run_on_at_most_max_workers_threads(
    make_hasher: Callable[..., PasswordHasher],
) -> None:
    threads_before = set(threading.enumerate())
    hasher = make_hasher(PASSWORD_HASH_WORKERS=2)
    done = asyncio.Event()
    most_threads = 0
    deepest_queue = 0

    async def watch() -> None:
        nonlocal most_threads, deepest_queue
        while not done.is_set():
            pool_threads = [
                thread
                for thread in threading.enumerate()
                if thread not in threads_before and thread.name.startswith(THREAD_NAME_PREFIX)
            ]
            most_threads = max(most_threads, len(pool_threads))
            deepest_queue = max(deepest_queue, hasher.queue_depth)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    hashes = await asyncio.gather(*(hasher.hash(f"{PASSWORD} {i}") for i in range(12)))
    done.set()
    await watcher

    assert len(set(hashes)) == 12
    assert 1 <= most_threads <= 2
    assert deepest_queue > 2  # jobs waited for a thread rather than each getting its own
    assert hasher.queue_depth == 0


async def test_the_event_loop_keeps_running_while_8_hashes_run(hasher: PasswordHasher) -> None:
    await hasher.warm_up()  # the dummy hash made at start-up is done
    started = asyncio.Event()
    done = asyncio.Event()
    ticks_while_hashing = 0

    async def tick() -> None:
        nonlocal ticks_while_hashing
        started.set()
        while not done.is_set():
            if hasher.queue_depth > 0:
                ticks_while_hashing += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await started.wait()
    await asyncio.gather(*(hasher.hash(f"{PASSWORD} {i}") for i in range(8)))
    done.set()
    await ticker

    # Were the hashes run on the loop, the ticker could not run until they were all done.
    assert ticks_while_hashing >= 8


async def test_cancelled_jobs_leave_the_queue_depth_right(make_hasher: Callable[..., PasswordHasher]) -> None:
    hasher = make_hasher(PASSWORD_HASH_WORKERS=1)
    tasks = [asyncio.create_task(hasher.hash(f"{PASSWORD} {i}")) for i in range(6)]
    await asyncio.sleep(0)  # every task submits its job
    for task in tasks[3:]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    # One thread runs jobs in order: once this one is done, every earlier job has finished or been dropped.
    await hasher.hash(PASSWORD)

    assert all(isinstance(result, str) for result in results[:3])
    assert all(isinstance(result, asyncio.CancelledError) for result in results[3:])
    assert hasher.queue_depth == 0


def test_shutdown_can_be_called_twice(hasher: PasswordHasher) -> None:
    hasher.shutdown()
    hasher.shutdown()


async def test_a_full_queue_refuses_a_new_job_at_once_and_takes_one_again_when_it_drains(
    make_hasher: Callable[..., PasswordHasher],
) -> None:
    hasher = make_hasher(PASSWORD_HASH_WORKERS=1, PASSWORD_HASH_QUEUE_MAX=2)
    await hasher.hash(PASSWORD)  # one thread runs jobs in order: the start-up job is done
    queued = [asyncio.create_task(hasher.hash(f"{PASSWORD} {i}")) for i in range(2)]
    await asyncio.sleep(0)  # both submit their jobs
    with pytest.raises(HashQueueFull) as refused:
        await hasher.hash("a third job")
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": "1"}
    hashes = await asyncio.gather(*queued)
    assert await hasher.verify(hashes[1], f"{PASSWORD} 1") is True


async def test_finished_counts_the_jobs_that_ran(make_hasher: Callable[..., PasswordHasher]) -> None:
    hasher = make_hasher(PASSWORD_HASH_WORKERS=1)
    await hasher.hash(PASSWORD)
    before = hasher.finished
    await asyncio.gather(*(hasher.verify_dummy(PASSWORD) for _ in range(3)))
    assert hasher.finished - before == 3


async def test_a_64_mib_hash_reuses_the_memory_of_the_hash_before(
    make_hasher: Callable[..., PasswordHasher],
) -> None:
    """The API image's GLIBC_TUNABLES (docker/api.Dockerfile; a run outside it needs them exported): argon2id
    asks for its 64 MiB in one block, which glibc's defaults map afresh for every hash (16,385 page faults
    each, ~40 ms of kernel CPU); kept by the allocator, the next hash on the hashing thread faults in none of
    it."""
    assert "glibc.malloc.mmap_max=0" in os.environ.get("GLIBC_TUNABLES", ""), "not the API image's allocator"
    hasher = make_hasher(ARGON2_MEMORY_KIB=65536, PASSWORD_HASH_WORKERS=1)
    await hasher.warm_up()  # the first 64 MiB block, faulted in once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    await hasher.hash(PASSWORD)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 1024, faults  # a fresh block would be 16,384 pages of 4 KiB
