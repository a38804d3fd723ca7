"""Counting and deciding.

Per-IP limits: a fixed window per (limit name, client IP). A hit is one upsert on its own, committed at once
(`app.core.database.driver_connection`, on an UNLOGGED table: no WAL flush to wait for), so it is counted
even when the request it guards then fails (a wrong password, a bad token). The first refused request of a
window writes its audit row, and now and then a new window prunes old ones, in a short transaction of
their own (`in_own_transaction`, `synchronous_commit = off`).

Login throttling: consecutive failures per canonical email (and per known device, `devices.py`). An
attempt is reserved, that is counted, before its password is checked, by one conditional UPDATE that counts
it only if the schedule allows it (an INSERT for the first): the first LOGIN_FREE_ATTEMPTS are free; after
that each attempt must wait LOGIN_DELAY_BASE_SECONDS * 2^(failures - free), at most
LOGIN_DELAY_MAX_SECONDS, counted from the last counted attempt. A refused attempt is answered without
checking the password and is not counted. At LOGIN_MAX_FAILURES untrusted clients are refused until a reset
or a login from a known device. A success clears the count; a failure leaves its reservation counted.
"""

import functools
import ipaddress
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import CteWrite, driver_connection, execute_write, in_own_transaction, shift_parameters
from app.core.errors import OAuthError, PyauthError
from app.ratelimit import repository

# A new window prunes windows older than this, now and then, so the table stays small.
PRUNE_AFTER = timedelta(hours=1)
PRUNE_PROBABILITY = 0.02


class RateLimited(PyauthError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many requests. Try again later."


class TokenEndpointRateLimited(OAuthError):
    """The same limit, in the token and revocation endpoints' RFC 6749 error shape."""

    status_code = 429
    code = "too_many_requests"
    message = "Too many requests. Try again later."


class LoginThrottled(OAuthError):
    """Token-endpoint shape (RFC 6749 §5.2), status 429 with Retry-After."""

    status_code = 429
    code = "too_many_requests"
    message = "Too many failed sign-in attempts for this account. Try again later."


class PasswordResetRequired(OAuthError):
    code = "invalid_grant"
    message = (
        "Too many failed sign-in attempts: reset the password, or sign in from a device that signed in "
        "before."
    )


def hit_upsert(shifted_by: int) -> str:
    """The hit's upsert (`repository.COUNT_HIT`: the key, the window's start), its parameters numbered
    `shifted_by` higher, for a `repository.Counted` statement that holds it."""
    return shift_parameters(repository.COUNT_HIT, shifted_by)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


@functools.lru_cache(maxsize=4096)
def client_bucket(ip: str | None) -> str:
    """Whom a per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one. A /64 is one link's prefix,
    and a host on it picks its own addresses in it (SLAAC, RFC 8981 temporary addresses), so a client owns
    at least 2^64 of them; counting per IPv6 address would give it as many buckets. IPv4-mapped IPv6 is
    counted as the IPv4 address it maps. Kept for the addresses seen last: parsing one took ~12 µs of a
    refresh's CPU in process."""
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # not an address (a test transport's name): counted as itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


async def hit(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    name: str,
    limit: int,
    settings: Settings,
    ctx: RequestContext,
    error: type[PyauthError] = RateLimited,
    read: repository.Read | None = None,
    counted: repository.Counted | None = None,
) -> None:
    """Count one request of the calling client against limit `name`; raise `error` (429, Retry-After)
    past it. Counted on its own (autocommit), so the count stands whatever the request does next. A
    `read` the request would make next goes in the same round trip (`repository.count_hit_and_read`); a
    `counted` statement counts the hit itself, with what it does while within the limit."""
    now = ctx.now
    window = settings.RATE_LIMIT_WINDOW_SECONDS
    start = datetime.fromtimestamp(now.timestamp() // window * window, now.tzinfo)
    key = f"{name}:{client_bucket(ctx.ip_address)}"
    async with driver_connection(sessionmaker) as connection:
        if counted is not None:
            hits = await counted.count(connection, key, start, limit)
        elif read is None:
            hits = await repository.count_hit(connection, key, start)
        else:
            hits = await repository.count_hit_and_read(connection, key, start, read)
    limited = hits > limit
    first_refused = hits == limit + 1  # one audit row per window, not one per refused request
    prune = hits == 1 and random.random() < PRUNE_PROBABILITY  # noqa: S311 - not security-relevant
    if prune or first_refused:
        async with in_own_transaction(sessionmaker) as db:
            await repository.skip_wal_flush(db)
            if prune:
                await repository.prune_windows(db, now - PRUNE_AFTER)
            if first_refused:
                await record(db, AuditEvent.RATE_LIMITED, ctx=ctx, reason=name)
    if limited:
        wait = (start + timedelta(seconds=window) - now).total_seconds()
        raise error(headers=_retry_after(wait))


class AttemptKind(StrEnum):
    """What a `login_throttles` row counts."""

    LOGIN = "login"  # sign-ins from untrusted clients, per canonical email
    REAUTH = "reauth"  # a signed-in user's current-password checks (password and email change)
    MFA = "mfa"  # second factors of a login past its password (app.mfa.login)


@dataclass(frozen=True)
class Reservation:
    """The answer to a request for one password check. Granted: `failures` counts it already. Refused:
    `locked` (LOGIN_MAX_FAILURES reached) or wait `retry_after` seconds."""

    granted: bool
    failures: int
    retry_after: float = 0.0
    locked: bool = False

    @property
    def retry_after_header(self) -> dict[str, str]:
        return _retry_after(self.retry_after)


def delay_for(failures: int, settings: Settings) -> float:
    if failures < settings.LOGIN_FREE_ATTEMPTS:
        return 0.0
    exponent = min(failures - settings.LOGIN_FREE_ATTEMPTS, 32)
    return float(min(settings.LOGIN_DELAY_BASE_SECONDS * 2**exponent, settings.LOGIN_DELAY_MAX_SECONDS))


def refusal(
    failures: int, last_failure_at: datetime | None, settings: Settings, now: datetime, *, lock: bool
) -> Reservation | None:
    """Why the schedule refuses an attempt now (the lock, or how long to wait), or None if it allows one."""
    if lock and failures >= settings.LOGIN_MAX_FAILURES:
        return Reservation(granted=False, failures=failures, locked=True)
    wait = (
        (last_failure_at + timedelta(seconds=delay_for(failures, settings)) - now).total_seconds()
        if last_failure_at is not None and failures >= settings.LOGIN_FREE_ATTEMPTS
        else 0.0
    )
    return Reservation(granted=False, failures=failures, retry_after=wait) if wait > 0 else None


async def reserve_attempt(
    db: AsyncSession,
    email: str,
    *,
    settings: Settings,
    now: datetime,
    kind: AttemptKind = AttemptKind.LOGIN,
    lock: bool = True,
) -> Reservation:
    """Count one password check against `email` before it runs, if the schedule allows one now.

    One statement decides and counts (`repository.count_attempt`): concurrent ones queue on the row and
    each re-checks the schedule against the count the one before left, so however many attempts arrive
    at once, no more checks run than one after the other would: at most LOGIN_FREE_ATTEMPTS before the
    delay applies. A refused attempt takes no lock, so refusals do not queue behind each other. The count
    stays when the check fails; a success deletes the row (`clear_failures`)."""
    for _ in range(3):
        attempt = await repository.count_attempt(db, email, kind.value, settings=settings, now=now, lock=lock)
        if attempt.counted is not None:
            return Reservation(granted=True, failures=int(attempt.counted))
        if attempt.failures is not None:
            refused = refusal(attempt.failures, attempt.last_failure_at, settings, now, lock=lock)
            if refused is not None:
                return refused
        # A concurrent attempt counted, inserted or deleted the row during the statement: again.
    return Reservation(granted=False, failures=0, retry_after=1.0)


async def release_attempt(db: AsyncSession, email: str, *, kind: AttemptKind = AttemptKind.LOGIN) -> None:
    """Give back a reservation whose check did not fail: it never ran, or the password was right."""
    await execute_write(db, attempt_released(email, kind=kind))


def attempt_released(email: str, *, kind: AttemptKind = AttemptKind.LOGIN) -> CteWrite:
    """`release_attempt` as a write that can ride in another statement."""
    return repository.attempt_uncounted(email, kind.value)


async def clear_failures(db: AsyncSession, email: str, *kinds: AttemptKind) -> None:
    """Forget the failures of `email`, in one statement: of the kinds a success proved (the mfa grant's
    second factor and the password before it), or of every kind (no kinds: after a reset)."""
    if kinds:
        await execute_write(db, failures_cleared(email, *kinds))
    else:
        await repository.delete_throttles(db, email)


def failures_cleared(email: str, *kinds: AttemptKind) -> CteWrite:
    """`clear_failures` of these kinds as a write that can ride in another statement (a login's session)."""
    return repository.throttles_cleared(email, [kind.value for kind in kinds])
