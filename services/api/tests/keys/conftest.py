"""Fixtures for the key tests: a session factory inside the test's rolled-back transaction, a clock
the test moves, and a key ring loaded through them.

Other suites' apps commit signing keys for real (their lifespan loads a key ring), so the tests here
never assume the table starts empty: they hide its rows, inside their transaction or for the test.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.keyring import KeyRing
from app.keys.models import SigningKey
from app.keys.storage import rotate_signing_key
from tests.conftest import rows_set_aside


@pytest.fixture
async def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Commits made through it only release savepoints: the test's transaction rolls all back,
    including the deletion of keys committed before the test."""
    await connection.execute(delete(SigningKey))
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
async def committed_keys_set_aside(engine: AsyncEngine) -> AsyncIterator[None]:
    """For tests that must commit: the table starts empty and, afterwards, holds again exactly the
    rows it held before."""
    table = SigningKey.__table__
    assert isinstance(table, Table)
    async with rows_set_aside(engine, table):
        yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def keyring(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> KeyRing:
    return await KeyRing.load(sessionmaker, settings, clock)


@pytest.fixture
def rotate(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> Callable[[], Awaitable[str]]:
    """Rotate as `rotate --now` would, from another 'process': the key rings under test do not see it
    until they refresh. The new access-token key's kid."""

    async def rotate() -> str:
        async with sessionmaker() as session, session.begin():
            kids = await rotate_signing_key(session, settings, clock, lead=timedelta(0))
        return kids[settings.JWT_ALGORITHM]

    return rotate
