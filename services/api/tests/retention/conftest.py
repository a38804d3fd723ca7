"""Fixtures for the retention tests: the pass runs inside the test's rolled-back transaction, so it
prunes what the test wrote (and anything committed that is old enough) without keeping a change."""

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker


@pytest.fixture
def test_sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions on the test's connection: each batch's commit only releases a savepoint."""
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
