"""argon2id itself, synchronous: what one hashing thread runs, in a worker's pool (`hashing`) or in the pool
the workers share (`pool`), with the cost parameters from `Settings`."""

import contextlib
import os
import threading

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.config import Settings

THREAD_NAME_PREFIX = "password-hash"


class Argon2id:
    """Hashes and verifies passwords (bytes, as `encode_password` makes them) with the configured cost."""

    def __init__(self, settings: Settings) -> None:
        self._argon2 = argon2.PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_KIB,
            parallelism=settings.ARGON2_PARALLELISM,
            type=argon2.Type.ID,
        )

    def hash(self, password: bytes) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: bytes) -> bool:
        """True if `password` matches; False on a mismatch or a hash that cannot be read."""
        # argon2-cffi encodes the hash as ASCII and would raise UnicodeEncodeError on anything else.
        if not password_hash.isascii():
            return False
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters than the current ones (rehash it at login)."""
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def lower_priority(nice: int) -> None:
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


def encode_password(password: str) -> bytes:
    # The policy refuses lone surrogates in new passwords, but one can still arrive at login: encode it
    # rather than raise, so that it simply fails to match. Valid text encodes exactly as plain UTF-8.
    return password.encode("utf-8", "surrogatepass")
