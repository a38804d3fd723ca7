"""Test fixtures: a test database of its own, migrated with Alembic, and one rolled-back transaction
per test.

The database is the one named by DATABASE_URL, which must end in `_test`: `make test` points it at
`pyauth_test` on the compose `db` host, so development data is never read or written.

The app connects as DATABASE_URL's role, as it does in production: with `make test` the limited
application role. TEST_ADMIN_DATABASE_URL names a role that may create databases (`make test`: the
superuser): it creates and migrates the test database, and it cleans up what the application role may not
(audit rows, probe tables). Unset, DATABASE_URL's role does all of it (a single-role database).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import Connection, Table, delete, insert, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.database import build_engine, get_db
from app.health.service import alembic_config
from app.main import create_app

TEST_KEY_ENCRYPTION_KEY = "test-only-key-encryption-key-0123456789"
# 32 random bytes in base64 (`openssl rand -base64 32`): what production accepts, for its settings tests.
PRODUCTION_KEY_ENCRYPTION_KEY = "v5xV5Jk9bk1H7MtjRcbl2KCFbHchveSgi17t45fvlmw="

# What the settings would otherwise derive from the host's core count (os.cpu_count): the worker count,
# and from it each worker's pool size (DB_MAX_CONNECTIONS shared among the workers) and hashing threads.
# Pinned to what a 2-core CI machine derives (a pool of 10, one hashing thread), so that the suite runs the
# same on any machine: on 12 cores the pool would shrink to 3 and the concurrency tests would wait for it.
# A test of the derivation itself passes API_WORKERS=0 / PASSWORD_HASH_WORKERS=0 ("derive") explicitly.
HOST_INDEPENDENT_SETTINGS: dict[str, object] = {"API_WORKERS": 1, "PASSWORD_HASH_WORKERS": 1}


def make_settings(**overrides: object) -> Settings:
    """Settings for the test database, with overrides; `.env` is not read."""
    values: dict[str, object] = {
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgresql+asyncpg://pyauth:pyauth@localhost:5432/pyauth_test"
        ),
        # Always the test key: signing keys stored in the test database are encrypted with it.
        "KEY_ENCRYPTION_KEY": TEST_KEY_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        **HOST_INDEPENDENT_SETTINGS,
        "DB_STARTUP_TIMEOUT": 10,
        # Tests send many requests from one address; the rate-limit tests turn the limits on.
        "RATE_LIMITS_ENABLED": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = make_settings()
    database = settings.database_url.database or ""
    if not database.endswith("_test"):
        pytest.exit(f"refusing to run tests against {database!r}: its name must end in _test", returncode=2)
    return settings


def admin_database_url(database: str | None, fallback: str | URL) -> URL:
    """TEST_ADMIN_DATABASE_URL (or, unset, `fallback`: DATABASE_URL) on `database`."""
    return make_url(os.environ.get("TEST_ADMIN_DATABASE_URL") or fallback).set(database=database)


async def _create_database_if_missing(settings: Settings) -> None:
    url = settings.database_url
    admin = create_async_engine(
        admin_database_url("postgres", settings.DATABASE_URL), isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            )
            if not exists:
                try:
                    await connection.execute(text(f'CREATE DATABASE "{url.database}"'))
                except DBAPIError as error:
                    if getattr(error.orig, "sqlstate", None) != "42501":
                        raise
                    pytest.exit(
                        f"{admin.url.username!r} may not create {url.database!r}: set "
                        "TEST_ADMIN_DATABASE_URL to a role that may, "
                        "e.g. postgresql+asyncpg://postgres:postgres@localhost:5432/postgres",
                        returncode=2,
                    )
    finally:
        await admin.dispose()


def _upgrade(connection: Connection, app_role: str | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["configure_logging"] = False
    config.attributes["app_role"] = app_role  # migration 0010 grants it the application's rights
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
async def admin_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The test database as TEST_ADMIN_DATABASE_URL's role, which migrated it: for what the application
    role may not do (DDL, deleting audit rows)."""
    await _create_database_if_missing(settings)
    admin = create_async_engine(admin_database_url(settings.database_url.database, settings.DATABASE_URL))
    async with admin.begin() as connection:
        await connection.run_sync(_upgrade, settings.database_url.username)
    yield admin
    await admin.dispose()


@pytest.fixture(scope="session")
async def engine(settings: Settings, admin_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The migrated test database as the application's role (DATABASE_URL)."""
    engine = build_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def db_session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session whose commits only release savepoints: everything it writes is rolled back."""
    session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        await session.close()


@pytest.fixture
def clock() -> ManualClock:
    """The app's clock in tests: real time at the start, moved only by the test."""
    return ManualClock()


@pytest.fixture
async def app(
    settings: Settings, engine: AsyncEngine, db_session: AsyncSession, clock: ManualClock
) -> AsyncIterator[FastAPI]:
    """The real app, started through its lifespan, with every request's session inside the test's
    rolled-back transaction."""
    async with started_in_test_transaction(create_app(settings, clock=clock), db_session) as application:
        yield application


@asynccontextmanager
async def started_in_test_transaction(
    application: FastAPI, db_session: AsyncSession
) -> AsyncIterator[FastAPI]:
    """`application` started through its lifespan, every request's session being `db_session`: as get_db
    does, but a commit only releases a savepoint of the test's transaction."""

    async def test_db() -> AsyncIterator[AsyncSession]:
        try:
            yield db_session
            await db_session.commit()
        except BaseException:
            await db_session.rollback()
            raise

    application.dependency_overrides[get_db] = test_db
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@asynccontextmanager
async def rows_set_aside(engine: AsyncEngine, table: Table) -> AsyncIterator[None]:
    """For tests that must commit to a shared table: it starts empty and, afterwards, holds again exactly
    the rows it held before."""
    async with engine.begin() as connection:
        saved = (await connection.execute(delete(table).returning(*table.c))).mappings().all()
    try:
        yield
    finally:
        async with engine.begin() as connection:
            await connection.execute(delete(table))
            if saved:
                await connection.execute(insert(table), [dict(row) for row in saved])


LIVE_EMAIL_DOMAIN = "live.example.org"


@pytest.fixture
async def live_app(settings: Settings, engine: AsyncEngine, clock: ManualClock) -> AsyncIterator[FastAPI]:
    """The real app with its own pool, committing for real in the test database: for concurrency tests,
    which one rolled-back connection cannot serve. Users it creates must use LIVE_EMAIL_DOMAIN; they
    (and, by cascade, their sessions) are deleted afterwards."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application
    await delete_live_accounts(engine)


async def delete_live_accounts(engine: AsyncEngine) -> None:
    """Delete what live tests committed: their users (sessions and tokens go by cascade), and the audit
    rows, mails and login counters about them, which outlive users by design. As the admin role: the
    application role may not delete audit rows."""
    pattern = {"pattern": f"%@{LIVE_EMAIL_DOMAIN}"}
    admin = create_async_engine(admin_database_url(engine.url.database, engine.url))
    try:
        await _delete_live_accounts(admin, pattern)
    finally:
        await admin.dispose()


async def _delete_live_accounts(engine: AsyncEngine, pattern: dict[str, str]) -> None:
    async with engine.begin() as connection:
        live_ids = "SELECT id FROM users WHERE email LIKE :pattern"
        await connection.execute(
            text(f"DELETE FROM audit_events WHERE user_id IN ({live_ids}) OR actor_id IN ({live_ids})"),  # noqa: S608 - constant
            pattern,
        )
        await connection.execute(text("DELETE FROM mail_outbox WHERE recipient LIKE :pattern"), pattern)
        await connection.execute(text("DELETE FROM login_throttles WHERE email LIKE :pattern"), pattern)
        await connection.execute(text("DELETE FROM users WHERE email LIKE :pattern"), pattern)


@pytest.fixture
async def live_client(live_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=live_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
