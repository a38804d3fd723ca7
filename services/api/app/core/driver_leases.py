"""Pooled connections handed from one driver statement to the next without going back to the pool.

A checkout from SQLAlchemy's pool and the check-in after it cost ~23 µs of CPU in a loop of their own and
~85 µs inside a `GET /users/me` (two greenlet hops, the pool's queue and lock, its connection wrappers and
events), a fifth of the request; a refresh makes two. The hot statements (`app.core.database`'s
`driver_connection` and `statement_connection`) take their connection through this worker's leases
instead: a connection checked out of the pool once, then passed on, as each statement ends, straight to a
statement waiting for one, or kept idle for the next. Taking or passing one is a list or future operation.

What the pool promises still holds:
- *Nobody in the pool waits on a lease.* A session that would wait for a connection
  (`LeasingPool._do_get`, the pool's own wait) first gets an idle lease's connection back into the pool,
  and a statement that ends while anyone waits in the pool gives its connection to the pool, not to the
  next statement. A statement waits here only while a lease is in use, and is sent to the pool once none
  is left to pass on. Waiting here is bounded by DB_POOL_TIMEOUT, and ends as the pool's wait does
  (`sqlalchemy.exc.TimeoutError`, a 503).
- *A lease is short.* After `LEASE_SECONDS` a connection goes back to the pool when its statement ends,
  so the pool's checkout (its closed-connection check, DB_POOL_PRE_PING, DB_POOL_RECYCLE) still sees each
  connection at least that often; one idle for `IDLE_SECONDS` goes back too (a sweep).
- *Only a clean connection is passed on*: open, in no transaction, after a block that raised nothing (one
  that raised goes back to the pool; one left in a transaction, which the pool's reset would not see, is
  closed); one the server closed meanwhile (a restart) is found before use (`is_closed`, no round trip)
  and goes back to the pool, which replaces it.
- None is kept after the engine is disposed (the lifespan's end): the idle ones are closed then.
"""

import asyncio
import collections
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

LEASE_SECONDS = 1.0
IDLE_SECONDS = 0.02
MAX_IDLE = 8


class LeasingPool(AsyncAdaptedQueuePool):
    """The engine's pool (`build_engine`), which counts who waits in it and, before anyone would wait,
    takes back an idle lease's connection (`reclaim`, set by `lease_connections`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = 0
        self.reclaim: Callable[[], None] | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        if self.reclaim is not None and self.checkedin() == 0:
            self.reclaim()  # runs in the checkout's greenlet: the pool's reset may await the driver
        self.waiting += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1


@dataclass(slots=True)
class Lease:
    pooled: PoolProxiedConnection
    driver: asyncpg.Connection
    taken_at: float  # time.monotonic() of the pool's checkout
    idle_since: float = 0.0

    @classmethod
    def of(cls, pooled: PoolProxiedConnection) -> "Lease":
        return cls(pooled, pooled.driver_connection, time.monotonic())


Checkout = Callable[[], Awaitable[PoolProxiedConnection]]


class DriverLeases:
    """The leases of one engine, used on one event loop (the worker's; another loop goes to the pool)."""

    def __init__(self, pool: LeasingPool, *, capacity: int, timeout: float) -> None:
        self._pool = pool
        self._capacity = capacity  # what the pool may hand out in all (DB_POOL_SIZE + DB_MAX_OVERFLOW)
        self._timeout = timeout
        self._max_idle = min(MAX_IDLE, capacity)
        self._idle: list[Lease] = []
        self._waiters: collections.deque[asyncio.Future[Lease | None]] = collections.deque()
        self._in_use = 0
        self._checking_out = 0  # this engine's statements in the pool's checkout, which may wait there
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._returning: set[asyncio.Task[None]] = set()
        self._disposed = False

    async def acquire(self, checkout: Checkout) -> Lease:
        """An idle lease; else, with every connection out and a lease in use, the next lease passed on;
        else a connection checked out of the pool with `checkout` (its errors raised as is)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if loop is self._loop and not self._disposed:
            while self._idle:
                lease = self._idle.pop()
                if not lease.driver.is_closed():
                    self._in_use += 1
                    return lease
                await give_back(lease)  # the server closed it: the pool replaces it at its next checkout
            if self._in_use and self._pool.checkedout() >= self._capacity and not self._others_wait():
                passed = await self._wait_for_lease(loop)
                if passed is not None:
                    return passed
        self._checking_out += 1
        try:
            lease = Lease.of(await checkout())
        finally:
            self._checking_out -= 1
        self._in_use += 1
        return lease

    def _others_wait(self) -> bool:
        """Whether anyone but these statements waits in the pool (a session)."""
        return self._pool.waiting > self._checking_out

    async def _wait_for_lease(self, loop: asyncio.AbstractEventLoop) -> Lease | None:
        """The lease a statement passes on as it ends (`release`); None when one went back to the pool
        instead, to be waited for there."""
        waiter: asyncio.Future[Lease | None] = loop.create_future()
        self._waiters.append(waiter)
        passed: Lease | None = None
        try:
            async with asyncio.timeout(self._timeout):
                passed = await waiter
            return passed
        except TimeoutError:
            raise PoolTimeoutError(
                f"{type(self._pool).__name__} limit of size {self._pool.size()} overflow "
                f"{self._pool.overflow()} reached, connection timed out, timeout {self._timeout:.2f}"
            ) from None
        finally:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if passed is None and handed is not None:
                # Passed on just as the wait ended otherwise (its timeout, the request's cancellation).
                self._in_use -= 1
                self._return_soon([handed])
            waiter.cancel()  # a no-op once done; release() skips a cancelled waiter

    async def release(self, lease: Lease, *, clean: bool) -> None:
        """The connection of a statement that ended: passed to a statement waiting here, kept idle for the
        next one, or given back to the pool (always when the block raised, `clean` False)."""
        self._in_use -= 1
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        if (
            clean
            and not self._disposed
            and not self._pool.waiting  # a session, or a statement sent there, waits in the pool for one
            and now - lease.taken_at < LEASE_SECONDS
            and loop is self._loop
            and not lease.driver.is_closed()
            and not lease.driver.is_in_transaction()
        ):
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    self._in_use += 1
                    waiter.set_result(lease)
                    return
            if len(self._idle) < self._max_idle:
                lease.idle_since = now
                self._idle.append(lease)
                if self._sweep is None:
                    self._sweep = loop.call_later(IDLE_SECONDS, self._sweep_idle)
                return
        await give_back(lease)
        if not self._in_use:  # no lease left to pass on: those waiting here wait in the pool instead
            self._send_waiters_to_the_pool()

    def _send_waiters_to_the_pool(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

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

    def reclaim_one(self) -> None:
        """Someone is about to wait in the pool: an idle lease's connection goes back to it first. Called
        by `LeasingPool._do_get`, in the checkout's greenlet."""
        if self._idle:
            self._idle.pop(0).pooled.close()

    def dispose(self) -> None:
        """The engine is being disposed: close the idle connections (called inside its greenlet, where the
        driver may be awaited), keep none from now on, and send the statements waiting here to the pool."""
        self._disposed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for lease in idle:
            lease.pooled.invalidate()  # closes the driver's connection; the pool forgets it
        self._send_waiters_to_the_pool()


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


def lease_connections(engine: AsyncEngine, *, capacity: int, timeout: float) -> None:
    """Let the driver statements of `engine`, whose pool is a `LeasingPool`, pass their pooled connections
    on (`build_engine`)."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, LeasingPool):
        return
    leases = DriverLeases(pool, capacity=capacity, timeout=timeout)
    pool.reclaim = leases.reclaim_one
    _LEASES[engine.sync_engine] = leases
    event.listen(engine.sync_engine, "engine_disposed", lambda _engine: leases.dispose())


def leases_of(engine: AsyncEngine) -> DriverLeases | None:
    return _LEASES.get(engine.sync_engine)
