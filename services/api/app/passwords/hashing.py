"""argon2id password hashing in a bounded thread pool, so that it never runs on the event loop.

argon2-cffi releases the GIL while it hashes, so the pool's threads run on separate cores, and the pool's
size bounds how many hashes (each about 19 MiB and 17 ms of a core) run at once (ASVS 15.2.2). The queue in
front of it is bounded too (PASSWORD_HASH_QUEUE_MAX): past it a request is refused at once with 503 and
Retry-After, rather than waiting behind a flood for longer than any client waits.
"""

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.config import Settings
from app.core.errors import ServiceUnavailable

THREAD_NAME_PREFIX = "password-hash"

_P = ParamSpec("_P")
_T = TypeVar("_T")


class HashQueueFull(ServiceUnavailable):
    """Every hashing slot of this worker is taken and PASSWORD_HASH_QUEUE_MAX jobs are waiting or running."""

    message = "Too many password checks are waiting. Try again shortly."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


class PasswordHasher:
    """Hashes and verifies passwords with argon2id and the cost parameters from `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self._argon2 = argon2.PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_KIB,
            parallelism=settings.ARGON2_PARALLELISM,
            type=argon2.Type.ID,
        )
        self._max_workers = settings.password_hash_threads
        self._queue_max = settings.PASSWORD_HASH_QUEUE_MAX
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers,
            thread_name_prefix=THREAD_NAME_PREFIX,
            initializer=_lower_priority,
            initargs=(settings.PASSWORD_HASH_NICE,),
        )
        # Jobs finish on pool threads while the event loop submits new ones.
        self._pending_lock = threading.Lock()
        self._pending = 0
        self._finished = 0
        # Made now, in the pool, so that the first login of an unknown user does not also pay for making it.
        self._dummy_hash = self._submit(self._argon2.hash, secrets.token_bytes(32))

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
        return await self._run(self._argon2.hash, _encode(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        """True if `password` matches; False on a mismatch or a hash that cannot be read."""
        return await self._run(self._verify, password_hash, _encode(password))

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters than the current ones (rehash it at login)."""
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

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

    def _verify(self, password_hash: str, password: bytes) -> bool:
        # argon2-cffi encodes the hash as ASCII and would raise UnicodeEncodeError on anything else.
        if not password_hash.isascii():
            return False
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        self.refuse_when_full()
        return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))

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


def _lower_priority(nice: int) -> None:
    """Run this hashing thread at a lower CPU priority (Linux: niceness is per thread), so that while
    logins flood the pool the event loop still gets a core at once: for token checks, and for the
    statements of the logins themselves, whose pooled connections otherwise came back so slowly that
    requests waited out DB_POOL_TIMEOUT (503s in `make bench`'s `login-mfa` at nice 0, none at 10).
    Hashing keeps every cycle the loops leave idle. Raising one's own niceness needs no privilege. Off
    by default (PASSWORD_HASH_NICE=0) until its cost is measured: logins slow down under mixed load, and
    on a shared host every other busy process comes before the hashing too (README, performance)."""
    if nice and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _encode(password: str) -> bytes:
    # The policy refuses lone surrogates in new passwords, but one can still arrive at login: encode it
    # rather than raise, so that it simply fails to match. Valid text encodes exactly as plain UTF-8.
    return password.encode("utf-8", "surrogatepass")
