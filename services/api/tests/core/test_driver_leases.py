"""The statements sent to the driver pass their pooled connection on to the next (`app.core.driver_leases`),
and the pool's promises hold: no session waits on a lease, a statement waits no longer than the pool
would, a connection passed on is clean and open, and it goes back to the pool when idle, when old, when a
session waits, and when the engine is disposed."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.core import driver_leases
from app.core.database import build_engine, driver_connection
from tests.conftest import make_settings


@pytest.fixture
async def pooled_engine() -> AsyncIterator[AsyncEngine]:
    engine = build_engine(make_settings(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=2))
    try:
        yield engine
    finally:
        await engine.dispose()


def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


def _count_checkouts(engine: AsyncEngine) -> list[object]:
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args[0]))
    return checkouts


async def _backend_pid(engine: AsyncEngine) -> int:
    async with driver_connection(async_sessionmaker(bind=engine)) as connection:
        return int(await connection.fetchval("SELECT pg_backend_pid()"))


async def test_the_next_statement_reuses_the_kept_connection_without_a_checkout(
    pooled_engine: AsyncEngine,
) -> None:
    first = await _backend_pid(pooled_engine)
    checkouts = _count_checkouts(pooled_engine)
    assert await _backend_pid(pooled_engine) == first
    assert await _backend_pid(pooled_engine) == first
    assert checkouts == []
    assert _checked_out(pooled_engine) == 1  # kept idle by the lease, out of the pool


async def test_an_idle_connection_goes_back_to_the_pool(pooled_engine: AsyncEngine) -> None:
    await _backend_pid(pooled_engine)
    await asyncio.sleep(driver_leases.IDLE_SECONDS * 5)
    assert _checked_out(pooled_engine) == 0


async def _sleep_on_driver(engine: AsyncEngine, seconds: float, started: asyncio.Event | None = None) -> int:
    async with driver_connection(async_sessionmaker(bind=engine)) as connection:
        if started is not None:
            started.set()
        await connection.execute(f"SELECT pg_sleep({seconds})")
        return int(await connection.fetchval("SELECT pg_backend_pid()"))


async def _open_both(engine: AsyncEngine) -> None:
    """Connect the pool's two connections and check them back in. While the pool connects a new one, its
    checkout counts as waiting there, and a lease that ends meanwhile goes back to the pool: on a loaded
    machine one statement's connect outlasted the other's whole statement."""
    async with engine.connect() as one, engine.connect() as other:
        await one.execute(text("SELECT 1"))
        await other.execute(text("SELECT 1"))
    assert _checked_out(engine) == 0


async def _sleeping(engine: AsyncEngine, *seconds: float) -> list[asyncio.Task[int]]:
    """Statements that hold a connection each for `seconds`, started: each holds its connection."""
    events = [asyncio.Event() for _ in seconds]
    tasks = [
        asyncio.create_task(_sleep_on_driver(engine, each, event))
        for each, event in zip(seconds, events, strict=True)
    ]
    async with asyncio.timeout(5):
        await asyncio.gather(*(event.wait() for event in events))
    return tasks


async def test_a_session_that_would_wait_gets_an_idle_lease_back_at_once(
    pooled_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both connections of the pool kept idle by leases: each of two sessions finds the pool empty, and an
    idle lease's connection goes back to the pool before it would wait (no sweep here)."""
    monkeypatch.setattr(driver_leases, "IDLE_SECONDS", 30.0)
    # Nor an aged lease: on a loaded machine a first statement's connect and sleep took past
    # LEASE_SECONDS, and its connection went back to the pool before the first assertion.
    monkeypatch.setattr(driver_leases, "LEASE_SECONDS", 30.0)
    await _open_both(pooled_engine)
    kept = set(await asyncio.gather(*(_sleep_on_driver(pooled_engine, 0.05) for _ in range(2))))
    assert len(kept) == 2 and _checked_out(pooled_engine) == 2
    async with asyncio.timeout(0.5), pooled_engine.connect() as one, pooled_engine.connect() as other:
        pid = text("SELECT pg_backend_pid()")
        pids = {await one.scalar(pid), await other.scalar(pid)}
    assert pids == kept


async def test_with_every_connection_out_a_statement_takes_the_next_one_passed_on(
    pooled_engine: AsyncEngine,
) -> None:
    checkouts = _count_checkouts(pooled_engine)
    first, second = await _sleeping(pooled_engine, 0.2, 0.4)
    third = await _backend_pid(pooled_engine)  # waits for one of the two, then reuses it
    assert third == await first
    await second
    assert len(checkouts) == 2


async def test_a_statement_that_ends_while_a_session_waits_gives_the_session_its_connection(
    pooled_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_leases, "IDLE_SECONDS", 30.0)
    [sleeping] = await _sleeping(pooled_engine, 0.2)
    async with pooled_engine.connect() as held:
        await held.execute(text("SELECT 1"))
        async with asyncio.timeout(1), pooled_engine.connect() as waiting:  # waits in the pool
            assert await waiting.scalar(text("SELECT pg_backend_pid()")) == await sleeping


async def test_a_statement_waiting_for_a_lease_is_sent_to_the_pool_when_one_goes_back(
    pooled_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_leases, "LEASE_SECONDS", 0.0)  # every lease goes back to the pool
    first, second = await _sleeping(pooled_engine, 0.2, 0.4)
    async with asyncio.timeout(2):
        assert await _backend_pid(pooled_engine) == await first
    await second


async def test_waiting_for_a_lease_ends_at_the_pool_timeout_as_the_pool_s_wait_does() -> None:
    engine = build_engine(make_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.2))
    try:
        [sleeping] = await _sleeping(engine, 1.0)
        with pytest.raises(PoolTimeoutError, match=r"connection timed out, timeout 0\.20"):
            await _backend_pid(engine)
        await sleeping
        assert await _backend_pid(engine) > 0
    finally:
        await engine.dispose()


async def test_a_pool_of_one_serves_a_session_right_after_a_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver_leases, "IDLE_SECONDS", 30.0)
    engine = build_engine(make_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.2))
    try:
        await _backend_pid(engine)
        async with engine.connect() as session_connection:
            await session_connection.execute(text("SELECT 1"))
        assert _checked_out(engine) == 0
    finally:
        await engine.dispose()


async def test_a_connection_leased_longer_than_the_lease_goes_back_at_its_release(
    pooled_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_leases, "LEASE_SECONDS", 0.0)
    await _backend_pid(pooled_engine)
    assert _checked_out(pooled_engine) == 0


async def test_a_block_that_raises_gives_its_connection_back_to_the_pool(pooled_engine: AsyncEngine) -> None:
    with pytest.raises(asyncpg.UndefinedTableError):
        async with driver_connection(async_sessionmaker(bind=pooled_engine)) as connection:
            await connection.fetchval("SELECT 1 FROM no_such_table")
    assert _checked_out(pooled_engine) == 0


async def test_a_connection_left_in_a_transaction_is_closed(pooled_engine: AsyncEngine) -> None:
    """A transaction begun on the driver, behind SQLAlchemy's back, which the pool's reset would not roll
    back: the connection is closed rather than kept or pooled."""
    async with driver_connection(async_sessionmaker(bind=pooled_engine)) as left:
        await left.execute("BEGIN")
    assert left.is_closed()
    assert _checked_out(pooled_engine) == 0
    async with driver_connection(async_sessionmaker(bind=pooled_engine)) as connection:
        assert not connection.is_in_transaction()
    with pytest.raises(asyncpg.DivisionByZeroError):  # the same after a block that raised
        async with driver_connection(async_sessionmaker(bind=pooled_engine)) as left:
            await left.execute("BEGIN")
            await left.fetchval("SELECT 1 / 0")
    assert left.is_closed()


async def test_a_kept_connection_the_server_closed_is_replaced(
    pooled_engine: AsyncEngine, engine: AsyncEngine
) -> None:
    first = await _backend_pid(pooled_engine)
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    await asyncio.sleep(0.3)  # the event loop reads the server's goodbye
    second = await _backend_pid(pooled_engine)
    assert second != first


async def test_disposing_the_engine_closes_the_idle_connections() -> None:
    engine = build_engine(make_settings(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=0))
    async with driver_connection(async_sessionmaker(bind=engine)) as connection:
        await connection.fetchval("SELECT 1")
    assert not connection.is_closed()  # kept idle
    await engine.dispose()
    assert connection.is_closed()
    assert await _backend_pid(engine) > 0  # a disposed engine still works, without leases


async def test_statements_waiting_in_the_pool_are_not_passed_over_by_later_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst at start: two statements connect, six wait in the pool. Later statements keep coming and
    wait for a lease here; each connection that comes free goes to the pool first, so none of the six
    waits out DB_POOL_TIMEOUT while the later ones pass the two connections among themselves."""
    monkeypatch.setattr(driver_leases, "IDLE_SECONDS", 30.0)  # no sweep to rescue them
    engine = build_engine(make_settings(DB_POOL_SIZE=2, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=1))
    stop = asyncio.Event()

    async def keep_coming() -> None:
        while not stop.is_set():
            await _backend_pid(engine)

    try:
        burst = [asyncio.create_task(_sleep_on_driver(engine, 0.05)) for _ in range(8)]
        await asyncio.sleep(0.01)
        later = [asyncio.create_task(keep_coming()) for _ in range(2)]
        async with asyncio.timeout(3):
            await asyncio.gather(*burst)
        stop.set()
        await asyncio.gather(*later)
    finally:
        await engine.dispose()
