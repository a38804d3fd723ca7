"""Pooled connections kept out of the engine's pool between the statements sent to the driver directly.

A checkout from SQLAlchemy's pool and the check-in after it cost ~23 µs of CPU in a loop of their own and
~85 µs inside a `GET /users/me` (two greenlet hops, the pool's queue and lock, its connection wrappers and
events), a fifth of the request; a refresh makes two. The hot statements (`app.core.database`'s
`driver_connection` and `statement_connection`) take their connection from this worker's leases instead:
a connection checked out of the pool once and kept, between two statements, in a short list of this event
loop. Taking one is a `list.pop`, giving it back an `append`.

What the pool promises still holds:
- *Nobody waits on a connection a lease keeps idle.* A connection is kept only while the pool has not
  handed out all it may (DB_POOL_SIZE + DB_MAX_OVERFLOW): once it has, every connection given back goes
  to the pool, where a waiting session gets it, and an idle one goes back within `IDLE_SECONDS` (a sweep).
- *A lease is short.* After `LEASE_SECONDS` a connection goes back to the pool at its next release, so the
  pool's checkout (its closed-connection check, DB_POOL_PRE_PING, DB_POOL_RECYCLE) still sees each
  connection at least that often.
- *Only a clean connection is kept*: open, in no transaction, after a block that raised nothing (one that
  raised goes back to the pool; one left in a transaction, which the pool's reset would not see, is
  closed); one the
  server closed meanwhile (a restart) is found at the next take (`is_closed`, no round trip) and goes back
  to the pool, which replaces it.
- At most `MAX_IDLE` idle, and none after the engine is disposed (the lifespan's end): its idle
  connections are closed then, as the pool closes its own.
"""

import asyncio
import time
import weakref
from dataclasses import dataclass

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

LEASE_SECONDS = 1.0
IDLE_SECONDS = 0.02
MAX_IDLE = 8


@dataclass(slots=True)
class Lease:
    pooled: PoolProxiedConnection
    driver: asyncpg.Connection
    taken_at: float  # time.monotonic() of the pool's checkout
    idle_since: float = 0.0


class DriverLeases:
    """The leases of one engine, used on one event loop (the worker's; another loop goes to the pool)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity  # what the pool may hand out in all: beyond it, sessions wait
        self._max_idle = min(MAX_IDLE, capacity // 2)
        self._idle: list[Lease] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._returning: set[asyncio.Task[None]] = set()
        self._disposed = False

    async def take(self) -> Lease | None:
        """An idle lease of this loop; None when there is none (the caller checks one out of the pool)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        idle = self._idle if loop is self._loop else ()
        while idle:
            lease = self._idle.pop()
            if not lease.driver.is_closed():
                return lease
            await give_back(lease)  # the server closed it: the pool replaces it at its next checkout
        return None

    async def release(self, engine: AsyncEngine, lease: Lease) -> None:
        """Keep the lease idle for the next statement, or give its connection back to the pool."""
        now = time.monotonic()
        if (
            not self._disposed
            and len(self._idle) < self._max_idle
            and now - lease.taken_at < LEASE_SECONDS
            and asyncio.get_running_loop() is self._loop
            and engine.sync_engine.pool.checkedout() < self._capacity  # type: ignore[attr-defined]
            and not lease.driver.is_closed()
            and not lease.driver.is_in_transaction()
        ):
            lease.idle_since = now
            self._idle.append(lease)
            if self._sweep is None:
                self._sweep = self._loop.call_later(IDLE_SECONDS, self._sweep_idle)
            return
        await give_back(lease)

    def _sweep_idle(self) -> None:
        """Give the pool back each connection idle for IDLE_SECONDS; look again while any is idle."""
        self._sweep = None
        cutoff = time.monotonic() - IDLE_SECONDS
        stale = [lease for lease in self._idle if lease.idle_since <= cutoff]
        if stale:
            self._idle = [lease for lease in self._idle if lease.idle_since > cutoff]
            self._return_soon(stale)
        if self._idle and self._loop is not None:
            self._sweep = self._loop.call_later(IDLE_SECONDS, self._sweep_idle)

    def _return_soon(self, leases: list[Lease]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(_give_back_all(leases))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)

    def dispose(self) -> None:
        """The engine is being disposed: close the idle connections (called inside its greenlet, where the
        driver may be awaited) and keep none from now on."""
        self._disposed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for lease in idle:
            lease.pooled.invalidate()  # closes the driver's connection; the pool forgets it


async def give_back(lease: Lease) -> None:
    """The connection back to the pool, as the engine's own connections go (the pool's reset may await the
    driver). One left in a transaction begun on the driver, behind SQLAlchemy's back, is closed instead:
    the pool's reset would not roll that back."""
    if not lease.driver.is_closed() and lease.driver.is_in_transaction():
        await greenlet_spawn(lease.pooled.invalidate)
    await greenlet_spawn(lease.pooled.close)


async def _give_back_all(leases: list[Lease]) -> None:
    for lease in leases:
        await give_back(lease)


_LEASES: "weakref.WeakKeyDictionary[Engine, DriverLeases]" = weakref.WeakKeyDictionary()


def lease_connections(engine: AsyncEngine, capacity: int) -> None:
    """Let the driver statements of `engine` keep its pooled connections between them (`build_engine`)."""
    leases = DriverLeases(capacity)
    _LEASES[engine.sync_engine] = leases
    event.listen(engine.sync_engine, "engine_disposed", lambda _engine: leases.dispose())


def leases_of(engine: AsyncEngine) -> DriverLeases | None:
    return _LEASES.get(engine.sync_engine)


def checked_out(pooled: PoolProxiedConnection) -> Lease:
    """A lease of a connection just checked out of the pool."""
    return Lease(pooled, pooled.driver_connection, time.monotonic())
