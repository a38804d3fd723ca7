"""argon2id password hashing in a bounded thread pool, so that it never runs on the event loop.

argon2-cffi releases the GIL while it hashes, so the pool's threads run on separate cores, and the pool's
size bounds how many hashes (each about 19 MiB and 17 ms of a core) run at once (ASVS 15.2.2). The queue in
front of it is bounded too (PASSWORD_HASH_QUEUE_MAX): past it a request is refused at once with 503 and
Retry-After, rather than waiting behind a flood for longer than any client waits. A worker of a parent
that runs the shared pool (`pool`, API_WORKERS > 1) sends its jobs there instead: its own threads then
only wait for the answers, as many as the shared pool has threads.
"""

import asyncio
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from app.core.config import Settings
from app.core.errors import ServiceUnavailable
from app.passwords.argon2id import THREAD_NAME_PREFIX, Argon2id, encode_password, lower_priority
from app.passwords.pool import PoolConnection, PoolUnavailable, pool_from_environment, pool_threads

_P = ParamSpec("_P")
_T = TypeVar("_T")


class HashQueueFull(ServiceUnavailable):
    """Every hashing slot of this worker is taken and PASSWORD_HASH_QUEUE_MAX jobs are waiting or running."""

    message = "Too many password checks are waiting. Try again shortly."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class HashingPoolLost(HashQueueFull):
    """The shared hashing pool did not answer (its connection failed): refused as a full queue is."""

    message = "Password checks are unavailable for a moment. Try again shortly."


class PasswordHasher:
    """Hashes and verifies passwords with argon2id and the cost parameters from `Settings`: on threads of
    its own, or through the workers' shared pool at `pool` (by default the one this process's parent
    names, if any)."""

    def __init__(self, settings: Settings, pool: str | None = None) -> None:
        self._argon2id = Argon2id(settings)
        pool = pool or pool_from_environment()
        self._hash: Callable[[bytes], str]
        self._verify: Callable[[str, bytes], bool]
        if pool is None:
            self._max_workers = settings.password_hash_threads
            self._hash, self._verify = self._argon2id.hash, self._argon2id.verify
            nice = settings.PASSWORD_HASH_NICE
        else:
            # These threads only wait for the pool's answers; as many as it hashes on.
            self._max_workers = pool_threads(settings)
            connection = PoolConnection(pool)
            self._hash, self._verify = connection.hash, connection.verify
            nice = 0  # the pool's own threads run at PASSWORD_HASH_NICE
        self._queue_max = settings.PASSWORD_HASH_QUEUE_MAX
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers,
            thread_name_prefix=THREAD_NAME_PREFIX,
            initializer=lower_priority,
            initargs=(nice,),
        )
        # Jobs finish on pool threads while the event loop submits new ones.
        self._pending_lock = threading.Lock()
        self._pending = 0
        self._finished = 0
        # Made now, in the pool, so that the first login of an unknown user does not also pay for making it.
        self._dummy_hash = self._submit(self._hash, encode_password(secrets.token_urlsafe(32)))

    @property
    def max_workers(self) -> int:
        """How many hashes can run at once."""
        return self._max_workers

    @property
    def queue_depth(self) -> int:
        """Jobs submitted and not yet finished: those running and those waiting for a thread."""
        return self._pending

    @property
    def finished(self) -> int:
        """Jobs run to their end since start: how many hashes and verifications really ran."""
        return self._finished

    @property
    def is_full(self) -> bool:
        return self._pending >= self._queue_max

    def refuse_when_full(self) -> None:
        """Raise `HashQueueFull` now, before a caller does work it would have to undo for a refused job."""
        if self.is_full:
            raise HashQueueFull()

    async def hash(self, password: str) -> str:
        return await self._run(self._hash, encode_password(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        """True if `password` matches; False on a mismatch or a hash that cannot be read."""
        return await self._run(self._verify, password_hash, encode_password(password))

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters than the current ones (rehash it at login)."""
        return self._argon2id.needs_rehash(password_hash)

    async def warm_up(self) -> None:
        """Until the dummy hash is made. A worker awaits this before it takes requests: its first unknown-user
        login costs what every other one does, and its queue is empty when it reports startup complete.
        Shielded: a cancelled caller must not cancel the shared job before it has run."""
        await asyncio.shield(asyncio.wrap_future(self._dummy_hash))

    async def verify_dummy(self, password: str) -> None:
        """Spend what a wrong password costs, so that an unknown user cannot be told apart by timing."""
        if not self._dummy_hash.done():  # only before the lifespan's `warm_up` (tests that skip it)
            await self.warm_up()
        await self.verify(self._dummy_hash.result(), password)

    def shutdown(self) -> None:
        """Drop jobs still waiting and let running ones finish. Safe to call twice."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        self.refuse_when_full()
        try:
            return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))
        except PoolUnavailable as exc:
            raise HashingPoolLost() from exc

    def _submit(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        with self._pending_lock:
            self._pending += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._job_done(None)
            raise
        # Runs when the job finishes, is cancelled while queued, or at once if it already finished.
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, future: "Future[Any] | None") -> None:
        with self._pending_lock:
            self._pending -= 1
            if future is not None and not future.cancelled():
                self._finished += 1
