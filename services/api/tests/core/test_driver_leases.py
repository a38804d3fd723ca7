"""The statements sent to the driver keep their pooled connection between them (`app.core.driver_leases`),
and the pool's promises hold: nobody waits on a kept connection, a kept one is clean and open, and it goes
back to the pool when idle, when old, and when the engine is disposed."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import event, text
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
    assert _checked_out(pooled_engine) == 1  # kept by the lease, not in the pool


async def test_an_idle_connection_goes_back_to_the_pool(pooled_engine: AsyncEngine) -> None:
    await _backend_pid(pooled_engine)
    await asyncio.sleep(driver_leases.IDLE_SECONDS * 5)
    assert _checked_out(pooled_engine) == 0


async def test_a_session_waiting_for_the_last_connection_gets_the_idle_one(
    pooled_engine: AsyncEngine,
) -> None:
    """Two connections in all: one kept idle by a lease, one held by a session. A second session finds the
    pool empty and gets the idle one once the sweep gives it back, well within DB_POOL_TIMEOUT."""
    kept = await _backend_pid(pooled_engine)
    async with pooled_engine.connect() as held:
        await held.execute(text("SELECT 1"))
        async with asyncio.timeout(1), pooled_engine.connect() as waiting:
            assert await waiting.scalar(text("SELECT pg_backend_pid()")) == kept


async def test_with_every_connection_out_a_released_one_goes_back_to_the_pool(
    pooled_engine: AsyncEngine,
) -> None:
    async with pooled_engine.connect() as held:
        await held.execute(text("SELECT 1"))
        await _backend_pid(pooled_engine)  # released while both connections were out
        assert _checked_out(pooled_engine) == 1  # only the session's


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


async def test_a_pool_of_one_keeps_nothing_idle() -> None:
    """Half the pool at most may idle in leases: with one connection, none, so no session ever waits."""
    engine = build_engine(make_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0))
    try:
        await _backend_pid(engine)
        assert _checked_out(engine) == 0
    finally:
        await engine.dispose()
