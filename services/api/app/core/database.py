"""The database chain: settings → engine (the pool) → session factory → one session per request.

Nothing else in pyauth creates an engine. The app builds one in its lifespan and keeps it, with its
session factory, on `app.state`; `get_db()` hands each request its own session from there.

A request commits once, before its response. The few transactions that differ on purpose say so by name:
- `in_own_transaction`: a short transaction beside the request's, committed at once whatever the request
  does next (the per-IP rate limit's count);
- `commit_before_refusing`: what a refused request wrote so far (its audit row, its counted attempt) is
  committed before the error that rolls the rest back (failed logins, refreshes, current-password checks);
- `release_connection_before_hashing`: the pooled connection goes back before a password hash runs;
  up to it, a login's statements go to the driver (`statement_connection`) and each commits on its own;
- `RolledBackRefusal` (`app.core.errors`): an error whose handler rolls the request back and then keeps
  only its refusal (refused mailed links);
- `driver_connection`: one statement straight on the pooled asyncpg connection, outside any transaction
  (autocommit), for the read-only hot paths (`GET /users/me`): one round trip instead of three. Such
  statements take their connection through this worker's leases (`app.core.driver_leases`), passed from
  one statement to the next without going back to the pool in between.
"""

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement, event, text
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

# starlette's Request is FastAPI's; importing it alone keeps FastAPI out of the CLIs and the mail worker,
# which use this module only for the engine (`SessionDep`, which needs FastAPI, is in app.core.dependencies).
from starlette.requests import Request

from app.core.config import Settings
from app.core.driver_leases import Lease, LeasingPool, give_back, lease_connections, leases_of
from app.core.errors import ServiceUnavailable

log = logging.getLogger("pyauth.database")

# The Postgres advisory lock every migration run holds, so concurrent migrators run one at a time.
MIGRATION_LOCK_ID = 0x70796175_7468  # "pyauth"


class DatabaseUnreachable(RuntimeError):
    """The database did not answer `SELECT 1` within the startup bound."""


def build_engine(settings: Settings) -> AsyncEngine:
    """The connection pool, sized and bounded by settings."""
    connect_args: dict[str, object] = {
        "timeout": settings.DB_POOL_TIMEOUT,
        "server_settings": {"application_name": settings.DB_APPLICATION_NAME},
    }
    if settings.DB_PGBOUNCER:
        connect_args.update(pgbouncer_connect_args())
    engine = create_async_engine(
        settings.DATABASE_URL,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        pool_pre_ping=settings.DB_POOL_PRE_PING,
        pool_recycle=settings.DB_POOL_RECYCLE,
        # Statement parameters can hold emails, hashes and token digests: keep them out of errors and logs.
        hide_parameters=True,
        connect_args=connect_args,
        poolclass=LeasingPool,  # SQLAlchemy's asyncio queue pool, which leases give back to first
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed_connection)
    capacity = settings.DB_POOL_SIZE + settings.DB_MAX_OVERFLOW
    lease_connections(engine, capacity=capacity, timeout=settings.DB_POOL_TIMEOUT)
    return engine


def pgbouncer_connect_args() -> dict[str, object]:
    """What PgBouncer's transaction pooling needs of asyncpg (DB_PGBOUNCER): each transaction may run on
    another server connection, so no prepared statement may be looked up again later. asyncpg's own
    statement cache is off (statement_cache_size: the raw statements of `driver_connection` then run as
    unnamed statements), so is SQLAlchemy's (prepared_statement_cache_size), and SQLAlchemy's statements get
    names unique across every client (two clients sharing a server connection would otherwise both
    prepare `__asyncpg_stmt_1__`). PgBouncer 1.21+ with max_prepared_statements also tracks them."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def _replace_closed_connection(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """Hand out no connection the server has already closed (a database restart, an idle timeout).

    A restarting Postgres tells each client and closes the socket, and asyncpg notices as soon as the
    event loop reads it, so this catches the common case without a round trip. DisconnectionError makes
    the pool open a fresh connection instead. DB_POOL_PRE_PING also catches connections that vanished
    without a word (a dropped NAT entry), at three round trips per checkout with asyncpg."""
    driver_connection = record.driver_connection
    if driver_connection is not None and driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def build_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def wait_for_database(engine: AsyncEngine, settings: Settings) -> None:
    """Run `SELECT 1` until it succeeds, for at most DB_STARTUP_TIMEOUT seconds."""
    deadline = time.monotonic() + settings.DB_STARTUP_TIMEOUT
    delay = 0.2
    while True:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except Exception as exc:  # any failure means "not yet" until the deadline
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = exc.__class__.__name__
                raise DatabaseUnreachable(
                    f"database unreachable at {settings.database_target} after "
                    f"{settings.DB_STARTUP_TIMEOUT:g}s ({reason}); exiting"
                ) from None
            log.info("waiting for database at %s (%s)", settings.database_target, exc.__class__.__name__)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


@asynccontextmanager
async def in_own_transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A short transaction of its own, on a session of its own, committed when the block ends: what it
    writes stands even when the request it serves then fails and rolls back (a counted request must stay
    counted), and it holds no lock or connection for the rest of the request."""
    async with sessionmaker() as db:
        yield db
        await db.commit()


async def commit_before_refusing(db: AsyncSession) -> None:
    """Commit the request's transaction in the middle of the request, because the error response that
    follows rolls back what comes after: a refusal's audit row and its counted attempt must outlive it
    (ASVS 16.3). Only a flow that is about to refuse, or must keep a reservation whatever comes next,
    calls this."""
    await db.commit()


async def each_statement_commits(db: AsyncSession) -> None:
    """Until the session's next commit, each of its statements commits on its own (autocommit): no BEGIN
    and COMMIT round trips, for a flow that would commit each of its writes at once anyway (a login's
    throttled refusal, before any hash; the mfa grant's statements up to its reservation). Nothing where
    the session has begun a
    transaction already or is bound to a connection (a test's, in its own transaction)."""
    if isinstance(db.bind, AsyncEngine) and not db.in_transaction():
        await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


async def release_connection_before_hashing(db: AsyncSession) -> None:
    """Commit what the request read and wrote so far, so the pooled connection goes back before a password
    hash runs: a hash takes tens of milliseconds of CPU, and a connection held across it would cap
    concurrent logins at the pool's size. The next statement checks a connection out again. Nothing to
    do where the session has not begun (a password login's statements up to the hash go to the driver).
    """
    if db.in_transaction():
        await db.commit()


# SQLSTATE classes that mean "the database is not there right now": connection exceptions (08),
# insufficient resources (53), operator intervention such as a shutdown in progress (57P).
UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def driver_connection(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """The asyncpg connection under a session of `sessionmaker`, for statements sent to it directly
    (asyncpg prepares each once per connection). SQLAlchemy begins its transaction lazily, at its own
    first statement, so a statement sent here runs on its own (autocommit): one round trip. A session
    bound to a connection already in a transaction (a test's) runs it in that transaction instead.

    The connection goes back to the pool when the block ends. A driver error that means the database is
    not there (a lost connection, SQLSTATE classes 08, 53, 57P), raised by the block's statements or by
    the checkout's new connection, becomes `ServiceUnavailable` (503), as the same error raised through
    SQLAlchemy would."""
    bind = sessionmaker.kw.get("bind")
    if isinstance(bind, AsyncEngine):
        return _EngineConnection(bind)
    return _session_connection(sessionmaker)


def statement_connection(db: AsyncSession) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """The asyncpg connection for a statement of `db`'s request sent to the driver directly. Before the
    session has begun a transaction, a pooled connection on which the statement runs on its own
    (autocommit, as `driver_connection`): no BEGIN and COMMIT round trips, and the session still holds no
    connection. Once it has begun one, or where sessions are bound to a connection (a test's), the
    session's own connection, in its transaction. A lost database is a 503, as `driver_connection` says."""
    if isinstance(db.bind, AsyncEngine) and not db.in_transaction():
        return _EngineConnection(db.bind)
    return transaction_connection(db)


@dataclass(frozen=True)
class DriverStatement:
    """A SQLAlchemy Core statement compiled once for asyncpg, to be sent to the driver directly
    (`statement_connection`): its text (parameters $1, $2, ... with their casts) and the order of its
    named parameters, with the values its literals were bound to. Executing a built statement through an
    `AsyncSession` cost ~85 µs more a statement than sending this text (the compiled cache's lookup, the
    greenlet, the result's processing); asyncpg prepares the text once per connection."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, object]

    @classmethod
    def of(cls, statement: ClauseElement) -> "DriverStatement":
        compiled = cast(SQLCompiler, statement.compile(dialect=_ASYNCPG))
        # The literals' values; a parameter without one (None here) must be given to `parameters`.
        constants = {name: value for name, value in compiled.params.items() if value is not None}
        return cls(str(compiled), tuple(compiled.positiontup or ()), MappingProxyType(constants))

    def parameters(self, **values: object) -> tuple[object, ...]:
        """The positional parameters: `values` by name, the statement's literals as compiled. A parameter
        neither given nor a literal is a `KeyError`, never a NULL sent in its place."""
        return tuple(values[name] if name in values else self.constants[name] for name in self.names)

    async def fetchrow(self, db: AsyncSession, **values: object) -> asyncpg.Record | None:
        """Its one row (None: none), sent on the connection of `db`'s request (`statement_connection`)."""
        async with statement_connection(db) as connection:
            row: asyncpg.Record | None = await connection.fetchrow(self.sql, *self.parameters(**values))
        return row

    async def fetchval(self, db: AsyncSession, **values: object) -> Any:
        """The first column of its one row (None: none), sent as `fetchrow`."""
        async with statement_connection(db) as connection:
            return await connection.fetchval(self.sql, *self.parameters(**values))


_ASYNCPG = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


_PARAMETER = re.compile(r"\$(\d+)")


def shift_parameters(sql: str, by: int) -> str:
    """A statement for the driver (parameters $1, $2, ...) with its parameters numbered `by` higher, for a
    statement that holds it after parameters of its own."""
    return _PARAMETER.sub(lambda number: f"${int(number[1]) + by}", sql)


@dataclass(frozen=True)
class CteWrite:
    """A write as data-modifying common table expressions (`name AS (...), ...`, parameters $1 to $n) and
    its parameters: sent alone (`execute_write`), or inside another statement that takes it among its own
    CTEs (`with_writes`), in that statement's one round trip and transaction. Postgres runs every
    data-modifying CTE once and to completion whether or not the statement reads it."""

    sql: str
    parameters: tuple[object, ...]


@functools.lru_cache(maxsize=64)
def _with_writes_sql(statement: str, own_parameters: int, writes: tuple[tuple[str, int], ...]) -> str:
    ctes, shift = [], own_parameters
    for sql, count in writes:
        ctes.append(shift_parameters(sql, shift))
        shift += count
    return f"WITH {', '.join(ctes)}, {statement}" if ctes else f"WITH {statement}"


def with_writes(
    statement: str, parameters: Sequence[object], writes: Sequence[CteWrite]
) -> tuple[str, tuple[object, ...]]:
    """`statement` (`name AS (...), ...` then its final query, with parameters $1 to len(`parameters`))
    preceded by the CTEs of `writes`, their parameters numbered after its own; and every parameter. The
    text is built once for each combination of writes."""
    key = tuple((write.sql, len(write.parameters)) for write in writes)
    sql = _with_writes_sql(statement, len(parameters), key)
    return sql, (*parameters, *(value for write in writes for value in write.parameters))


async def execute_with_writes(
    db: AsyncSession, statement: str, parameters: Sequence[object], writes: Sequence[CteWrite]
) -> None:
    """`with_writes`' statement, sent to the driver (`statement_connection`): in the request's transaction
    once it has begun one, else on its own (one statement, so atomic and durable alone: one round trip
    instead of three)."""
    sql, values = with_writes(statement, parameters, writes)
    async with statement_connection(db) as connection:
        await connection.execute(sql, *values)


async def execute_write(db: AsyncSession, write: CteWrite) -> None:
    """`write` alone, in the request's transaction (begun here if it has not been)."""
    async with transaction_connection(db) as connection:
        await connection.execute(f"WITH {write.sql} SELECT NULL", *write.parameters)


def _raise_if_unavailable(error: BaseException) -> None:
    """Raise the 503 for a driver error that means the database is not there (logged); nothing for any
    other, which its caller raises as is."""
    if isinstance(error, asyncpg.PostgresError):
        if not str(error.sqlstate or "").startswith(UNAVAILABLE_SQLSTATES):
            return
    elif not isinstance(error, asyncpg.InterfaceError | asyncpg.InternalClientError | OSError | TimeoutError):
        return
    log.warning("database unavailable: %s", type(error).__name__)
    raise ServiceUnavailable() from None


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        _raise_if_unavailable(error)
        raise


class _EngineConnection:
    """The asyncpg connection of a pool entry of `engine`, through this worker's leases
    (`app.core.driver_leases`: often no checkout at all), else checked out with one greenlet hop and no
    `Connection` around it (an `engine.connect()` took three hops and a `Connection`); a lost database a
    503. One context manager: the three nested generator-based ones it replaced cost ~20 µs of a
    `GET /users/me`'s CPU in a request."""

    __slots__ = ("_engine", "_lease", "_leases")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._leases = leases_of(engine)
        self._lease: Lease | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            if self._leases is None:
                self._lease = Lease.of(await _checkout(self._engine))
            else:
                self._lease = await self._leases.acquire(self._checkout)
        except Exception as error:
            _raise_if_unavailable(error)
            raise
        return self._lease.driver

    def _checkout(self) -> Awaitable[PoolProxiedConnection]:
        return _checkout(self._engine)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        assert lease is not None
        try:
            if self._leases is None:
                await give_back(lease)
            else:
                await self._leases.release(lease, clean=exc_type is None)
        except Exception as error:
            _raise_if_unavailable(error)
            raise
        if isinstance(exc, Exception):
            _raise_if_unavailable(exc)


@asynccontextmanager
async def _session_connection(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[asyncpg.Connection]:
    """`driver_connection` where sessions are bound to a connection (a test's): that session's connection,
    committed when the block ends without an error."""
    with _unavailable_as_503():
        async with sessionmaker() as session:
            connection = await session.connection()
            yield (await connection.get_raw_connection()).driver_connection
            await session.commit()  # keeps what the statement wrote, as autocommit does on the engine's


@asynccontextmanager
async def transaction_connection(db: AsyncSession) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection of the session's transaction, which it begins if it has not: statements
    sent to the driver directly that must commit or roll back with the request's others."""
    with _unavailable_as_503():
        connection = await db.connection()
        yield (await connection.get_raw_connection()).driver_connection


async def _checkout(engine: AsyncEngine) -> PoolProxiedConnection:
    try:
        return await engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as error:
        # A new connection that could not be made, as `engine.connect()` raises it: SQLAlchemy's own
        # class (an OperationalError for a database that is not there), which the app answers 503.
        raise DBAPIError.instance(None, None, error, engine.dialect.loaded_dbapi.Error) from error


class LazySession:
    """A request's `AsyncSession`, made on its first use: every attribute is the session's, the first access
    makes it. A request answered by statements on the driver's connection alone (a refresh counted and
    rotated with its rate limit's hit, `app.auth.service.RotationAhead`) never makes one; making and closing
    one cost ~30 µs of CPU in process."""

    __slots__ = ("_make", "made")

    def __init__(self, make: Callable[[], AsyncSession]) -> None:
        self._make = make
        self.made: AsyncSession | None = None

    def __getattr__(self, name: str) -> Any:
        made = self.made
        if made is None:
            made = self.made = self._make()
        return getattr(made, name)


@asynccontextmanager
async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, made on first use (`LazySession`): committed once when the block ends
    (before the response is sent), rolled back on error, and always closed. For a handler FastAPI does
    not call (`app.core.exact_routes`).

    A session with nothing to commit (no transaction begun, nothing added, changed or deleted since its
    last one: a request whose statements all went to the driver) skips the commit, which would flush
    nothing and commit nothing but still cost 20 µs. Such a session holds no connection either, so it is
    closed without the greenlet hop `AsyncSession.close` takes to give connections back (`_close`)."""
    lazy = LazySession(request.app.state.sessionmaker)
    try:
        yield cast(AsyncSession, lazy)
        session = lazy.made
        if session is not None and (
            session.in_transaction() or session.new or session.dirty or session.deleted
        ):
            await session.commit()
    except BaseException:
        if lazy.made is not None:
            await lazy.made.rollback()
        raise
    finally:
        if lazy.made is not None:
            await _close(lazy.made)


async def _close(session: AsyncSession) -> None:
    """`session.close()`. Without a transaction the session holds no connection, and closing it only lets
    go of its objects, with no I/O: that is done in place rather than through `greenlet_spawn`."""
    if session.in_transaction():
        await session.close()
    else:
        session.sync_session.close()


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """`request_session` as the route dependency (`SessionDep`)."""
    async with request_session(request) as session:
        yield session
