"""Fixtures for the key tests: a session factory inside the test's rolled-back transaction, a clock
the test moves, and a key ring loaded through them.

Other suites' apps commit signing keys for real (their lifespan loads a key ring), so the tests here
never assume the table starts empty: they hide its rows, inside their transaction or for the test.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Table, delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.crypto import encrypt_private_key
from app.keys.keyring import KeyRing
from app.keys.models import SigningKey
from app.keys.storage import RSA_KEY_BITS, new_kid, public_jwk, rotate_signing_key
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


@pytest.fixture(scope="session")
def rsa_key_row(settings: Settings) -> dict[str, object]:
    """One stored RSA key for the key rings of this session's tests: a 2048-bit key takes about 0.15 s
    to generate, which every test of the ring would pay. The tests of key generation (first load,
    workers starting together, the key stored encrypted) load their ring from an empty table instead."""
    kid = new_kid()
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    secret = settings.KEY_ENCRYPTION_KEY.get_secret_value()
    return {
        "kid": kid,
        "algorithm": "RS256",
        "public_jwk": public_jwk(kid, "RS256", private_key.public_key()),
        "private_key_encrypted": encrypt_private_key(der, kid=kid, key_encryption_key=secret),
    }


@pytest.fixture
async def keyring(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
    connection: AsyncConnection,
    rsa_key_row: dict[str, object],
) -> KeyRing:
    """A ring loaded as at a first start, its RSA key already stored (`rsa_key_row`), its EC key generated."""
    await connection.execute(
        insert(SigningKey).values(
            **rsa_key_row, created_at=clock.now(), active_from=clock.now(), retired_at=None
        )
    )
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
