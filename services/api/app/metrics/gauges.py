"""The gauges read from this process's resources: the password-hash queue and the database pool.

Nothing on the request path updates them. They are read when they are needed: by the worker that
answers a scrape, just before it renders. With several workers (PROMETHEUS_MULTIPROC_DIR), the other
workers cannot be asked at that moment, so each one also writes its values to its files every
PUBLISH_INTERVAL_SECONDS; a scrape shows the sum over live workers (`livesum`): the hashes queued on the
whole server, and the connections it holds against Postgres's `max_connections`. The scraped worker's
share is exact; the others' are at most PUBLISH_INTERVAL_SECONDS old.
"""

import asyncio
import contextlib
import logging
import os

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from app.metrics import exposition
from app.metrics.instruments import DB_POOL_CHECKED_OUT, HASH_QUEUE_DEPTH
from app.passwords.hashing import PasswordHasher

log = logging.getLogger("pyauth.metrics")

PUBLISH_INTERVAL_SECONDS = 1.0


class ResourceGauges:
    """Publishes one process's hash queue depth and checked-out connections, and, with several workers,
    keeps publishing them until `stop()`."""

    def __init__(self, hasher: PasswordHasher, engine: AsyncEngine, *, enabled: bool = True) -> None:
        self._hasher = hasher
        self._engine = engine
        self._enabled = enabled
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        HASH_QUEUE_DEPTH.set(self._hasher.queue_depth)
        pool = self._engine.pool
        if isinstance(pool, QueuePool):  # the pool build_engine makes; others do not count
            DB_POOL_CHECKED_OUT.set(pool.checkedout())

    def start(self) -> None:
        """With several workers: clear what dead workers left, then publish every interval."""
        if not self._enabled or exposition.MULTIPROCESS_DIR is None or self._task is not None:
            return
        dead = exposition.forget_dead_processes()
        if dead:
            log.info("metrics: dropped the gauges of exited workers %s", dead)
        self.publish()
        self._task = asyncio.create_task(self._publish_periodically(), name="metrics-gauges")

    async def stop(self) -> None:
        """Stop publishing, and take this process out of the gauge sums."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        exposition.mark_process_dead(os.getpid())

    async def _publish_periodically(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_SECONDS)
            try:
                self.publish()
            except Exception:  # a full disk must not end the loop; the next tick tries again
                log.exception("metrics: could not publish the resource gauges")
