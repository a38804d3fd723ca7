"""Test fixtures: a test database of its own, migrated with Alembic, and one rolled-back transaction
per test.

The database is the one named by DATABASE_URL, which must end in `_test`: `make test` points it at
`pyauth_test` on the compose `db` host, so development data is never read or written.

The app connects as DATABASE_URL's role, as it does in production: with `make test` the limited
application role. TEST_ADMIN_DATABASE_URL names a role that may create databases (`make test`: the
superuser): it creates and migrates the test database, and it cleans up what the application role may not
(audit rows, probe tables). Unset, DATABASE_URL's role does all of it (a single-role database).

Speed (README, "Tests"): one app per test session (per xdist worker), started once through its lifespan;
each test swaps in its own clock and a session factory bound to its rolled-back connection, and gets the
app's state back as it was afterwards. Users come from `tests/factories.py` with a precomputed hash, and
argon2 runs at a test-only cost (ARGON2_BELOW_FLOOR_FOR_TESTS) unless a test names its cost or carries the
`real_password_cost` mark. Under pytest-xdist each worker has its own database (`pyauth_gw0_test`, ...).
"""

import functools
import gc
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import Connection, Table, delete, insert, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.clock import Clock, ManualClock, SystemClock
from app.core.config import Settings
from app.core.database import build_engine
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
DEFAULT_DATABASE_URL = "postgresql+asyncpg://pyauth:pyauth@localhost:5432/pyauth_test"

# argon2id at a test-only cost (64 KiB, one pass: some microseconds instead of ~30 ms a hash), allowed only
# by ARGON2_BELOW_FLOOR_FOR_TESTS, which production refuses. Settings that name an ARGON2_* value or
# ENVIRONMENT=production get the defaults (OWASP's floor) for the rest: tests of hashing cost keep it.
TEST_PASSWORD_COST: dict[str, object] = {
    "ARGON2_MEMORY_KIB": 64,
    "ARGON2_TIME_COST": 1,
    "ARGON2_BELOW_FLOOR_FOR_TESTS": True,
}
# What the `real_password_cost` mark gives a test's app: for tests whose subject is how long hashing takes.
REAL_PASSWORD_COST: dict[str, object] = {"ARGON2_MEMORY_KIB": 19456, "ARGON2_TIME_COST": 2}


def _database_url_of_this_worker(url: str, worker: str) -> str:
    """Under pytest-xdist each worker gets a database of its own, named after it before the `_test` end:
    `pyauth_test` becomes `pyauth_gw0_test`, so parallel workers never share rows, commits or locks."""
    parsed = make_url(url)
    name = parsed.database or ""
    base = name.removesuffix("_test")
    return parsed.set(database=f"{base}_{worker}_test").render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_password_cost: the test's app hashes at OWASP's argon2 floor, not the test cost"
    )
    # In the environment, not only in make_settings(): subprocesses (the CLIs) inherit it too.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if worker and not os.environ.get("PYAUTH_TEST_WORKER_DATABASE"):
        os.environ["DATABASE_URL"] = _database_url_of_this_worker(url, worker)
        os.environ["PYAUTH_TEST_WORKER_DATABASE"] = worker


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is alive once the tests are collected (modules, the app's code, the test functions) lives until
    the end: the garbage collector stops rescanning it in every full collection (measured over tests/oidc,
    web, auth and account: 0.8 CPU-s of full collections became 0.6)."""
    gc.freeze()


def make_settings(**overrides: object) -> Settings:
    """Settings for the test database, with overrides; `.env` is not read."""
    names_a_cost = any(name.startswith("ARGON2_") for name in overrides)
    production = overrides.get("ENVIRONMENT") == "production"
    values: dict[str, object] = {
        "DATABASE_URL": os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        # Always the test key: signing keys stored in the test database are encrypted with it.
        "KEY_ENCRYPTION_KEY": TEST_KEY_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        **HOST_INDEPENDENT_SETTINGS,
        "DB_STARTUP_TIMEOUT": 10,
        # Tests send many requests from one address; the rate-limit tests turn the limits on.
        "RATE_LIMITS_ENABLED": False,
        # No 0.1 s floor on forgot-password and verification answers (~8 s of waiting across the suite);
        # the floor's own test (tests/account/test_password_reset.py) gives its app the default back.
        "ENUMERATION_SAFE_RESPONSE_SECONDS": 0,
        **({} if names_a_cost or production else TEST_PASSWORD_COST),
    }
    values.update(overrides)
    if overrides.get("KEY_ENCRYPTION_KEY_FILE") and "KEY_ENCRYPTION_KEY" not in overrides:
        del values["KEY_ENCRYPTION_KEY"]  # the key comes from the file
    return cached_settings(values)


def cached_settings(values: dict[str, object]) -> Settings:
    """`Settings(**values)` without `.env`, made once per set of values and process environment (the
    settings read it): building one takes ~15 ms, and the suite asks for the same ones hundreds of
    times. Nothing changes a Settings object after it is built; unhashable values are not cached."""
    try:
        key = (tuple(sorted(values.items())), tuple(sorted(os.environ.items())))
        hash(key)
    except TypeError:
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]
    return _settings_for(key)


@functools.lru_cache(maxsize=256)
def _settings_for(key: tuple[tuple[tuple[str, object], ...], tuple[tuple[str, str], ...]]) -> Settings:
    return Settings(_env_file=None, **dict(key[0]))  # type: ignore[arg-type]


# What production takes, its secrets in files (mounted secrets) as it requires: the database URL without its
# password, which DATABASE_PASSWORD_FILE holds.
PRODUCTION_DATABASE_PASSWORD = "a-long-random-password"
PRODUCTION_DATABASE_URL = "postgresql+asyncpg://pyauth@db:5432/pyauth"


@pytest.fixture(scope="session")
def production_secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The settings of production's secrets: real files, named by their *_FILE settings."""
    folder = tmp_path_factory.mktemp("secrets")
    key = folder / "key_encryption_key"
    key.write_text(PRODUCTION_KEY_ENCRYPTION_KEY + "\n")
    password = folder / "database_password"
    password.write_text(PRODUCTION_DATABASE_PASSWORD + "\n")
    return {
        "DATABASE_URL": PRODUCTION_DATABASE_URL,
        "DATABASE_PASSWORD_FILE": str(password),
        "KEY_ENCRYPTION_KEY_FILE": str(key),
    }


def with_overrides(base: dict[str, object], overrides: dict[str, object]) -> dict[str, object]:
    """`base` with `overrides`; a secret given as a plain value replaces its file (a DATABASE_URL that
    holds a password replaces DATABASE_PASSWORD_FILE), as a deployment that set it so would run."""
    values = {**base, **overrides}
    if "KEY_ENCRYPTION_KEY" in overrides:
        values.pop("KEY_ENCRYPTION_KEY_FILE", None)
    url = overrides.get("DATABASE_URL")
    if isinstance(url, str) and make_url(url).password:
        values.pop("DATABASE_PASSWORD_FILE", None)
    return values


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


class SwappedClock:
    """The clock the shared app starts with and its key ring keeps: each test's `clock` in turn, real
    time between tests."""

    def __init__(self) -> None:
        self.current: Clock = SystemClock()

    def now(self) -> datetime:
        return self.current.now()


def sessions_in(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """A session factory on the test's connection: each session (one per request, as `get_db` makes
    them) works in a savepoint of the test's transaction, and its commit only releases that savepoint."""
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture(scope="session")
async def shared_app(settings: Settings, admin_engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    """One app for the whole session (per xdist worker), started once through its lifespan: its engine,
    hashing pool and key ring. Tests reach it through `app` or `live_app`, which lend it to one test."""
    application = create_app(settings, clock=SwappedClock())
    async with application.router.lifespan_context(application):
        yield application


@contextmanager
def lent_to_the_test(
    application: FastAPI, clock: ManualClock, sessionmaker: async_sessionmaker[AsyncSession] | None = None
) -> Iterator[FastAPI]:
    """`application` with the test's clock (also the key ring's) and, if given, its session factory:
    `app.state.sessionmaker`, the seam through which `get_db` opens each request's session and the rate
    limiter its own (the key ring and the first-admin step take a factory as an argument: their tests
    pass one bound to the test's connection). Its state and dependency overrides are as they were once
    the test ends, whatever the test changed."""
    state: dict[str, object] = application.state._state  # Starlette's State has no copy API
    saved_state, saved_overrides = dict(state), dict(application.dependency_overrides)
    swapped = saved_state["clock"]
    application.state.clock = clock
    if isinstance(swapped, SwappedClock):
        swapped.current = clock
    if sessionmaker is not None:
        application.state.sessionmaker = sessionmaker
    try:
        yield application
    finally:
        if isinstance(swapped, SwappedClock):
            swapped.current = SystemClock()
        state.clear()
        state.update(saved_state)
        application.dependency_overrides.clear()
        application.dependency_overrides.update(saved_overrides)


@pytest.fixture
async def app(
    request: pytest.FixtureRequest,
    shared_app: FastAPI,
    connection: AsyncConnection,
    clock: ManualClock,
) -> AsyncIterator[FastAPI]:
    """The real app, every session it opens inside the test's rolled-back transaction: the shared app, or
    for a test marked `real_password_cost` an app of its own hashing at OWASP's floor."""
    if request.node.get_closest_marker("real_password_cost"):
        own = create_app(make_settings(**REAL_PASSWORD_COST), clock=clock)
        async with started_in_test_transaction(own, connection) as application:
            yield application
        return
    with lent_to_the_test(shared_app, clock, sessions_in(connection)) as application:
        yield application


@asynccontextmanager
async def started_in_test_transaction(
    application: FastAPI, test_transaction: AsyncConnection | AsyncSession
) -> AsyncIterator[FastAPI]:
    """`application` (built for other settings than the shared app's) started through its lifespan, then
    every session it opens, one per request as in production, inside the test's rolled-back transaction
    (given as its connection, or a session bound to it)."""
    connection = test_transaction.bind if isinstance(test_transaction, AsyncSession) else test_transaction
    assert isinstance(connection, AsyncConnection), "the session must be bound to the test's connection"
    async with application.router.lifespan_context(application):
        application.state.sessionmaker = sessions_in(connection)
        yield application


class AppClient(httpx.AsyncClient):
    """An HTTP client of the app under test (over ASGI) that knows the app, so that helpers can insert
    users through the app's own session factory (`tests/factories.py`) rather than by registering."""

    def __init__(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        super().__init__(transport=transport, base_url="http://testserver")
        self.app = app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with AppClient(app) as client:
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
async def live_app(
    request: pytest.FixtureRequest, shared_app: FastAPI, admin_engine: AsyncEngine, clock: ManualClock
) -> AsyncIterator[FastAPI]:
    """The real app with its own pool, committing for real in the test database: for concurrency tests,
    which one rolled-back connection cannot serve. Users it creates must use LIVE_EMAIL_DOMAIN; they
    (and, by cascade, their sessions) are deleted afterwards."""
    try:
        if request.node.get_closest_marker("real_password_cost"):
            own = create_app(make_settings(**REAL_PASSWORD_COST), clock=clock)
            async with own.router.lifespan_context(own):
                yield own
        else:
            with lent_to_the_test(shared_app, clock) as application:
                yield application
    finally:
        await delete_live_accounts(admin_engine)


async def delete_live_accounts(engine: AsyncEngine) -> None:
    """Delete what live tests committed: their users (sessions and tokens go by cascade), and the audit
    rows, mails and login counters about them, which outlive users by design. As the admin role: the
    application role may not delete audit rows. Pass `admin_engine`; for another engine an admin engine
    is made for the call (a connection more, ~50 ms)."""
    pattern = {"pattern": f"%@{LIVE_EMAIL_DOMAIN}"}
    admin_url = admin_database_url(engine.url.database, engine.url)
    if engine.url.render_as_string(hide_password=False) == admin_url.render_as_string(hide_password=False):
        await _delete_live_accounts(engine, pattern)
        return
    admin = create_async_engine(admin_url)
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
    async with AppClient(live_app) as client:
        yield client
