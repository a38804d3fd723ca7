"""Counting and deciding.

Per-IP limits: a fixed window per (limit name, client IP). A hit is one upsert in a transaction of its own
with `synchronous_commit = off`, so it is counted even when the request it guards then fails (a wrong
password, a bad token) and costs no WAL flush.

Login throttling: consecutive failures per canonical email. The first LOGIN_FREE_ATTEMPTS are free; after
that each attempt must wait LOGIN_DELAY_BASE_SECONDS * 2^(failures - free), at most LOGIN_DELAY_MAX_SECONDS,
counted from the last failure. A throttled attempt is refused without checking the password and is not
counted. At LOGIN_MAX_FAILURES the password must be reset. A success or a reset clears the count.
"""

import ipaddress
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.config import Settings
from app.core.dependencies import ClientInfo
from app.core.errors import OAuthError, PyauthError
from app.ratelimit.models import LoginThrottle, RateLimitHit

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
    message = "Too many failed sign-in attempts: reset the password to sign in again."


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def client_bucket(ip: str | None) -> str:
    """Whom a per-IP limit counts: an IPv4 address, or the /64 of an IPv6 one. A /64 is one link's prefix,
    and a host on it picks its own addresses in it (SLAAC, RFC 8981 temporary addresses), so a client owns
    at least 2^64 of them; counting per IPv6 address would give it as many buckets. IPv4-mapped IPv6 is
    counted as the IPv4 address it maps."""
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
    client: ClientInfo,
    settings: Settings,
    now: datetime,
    error: type[PyauthError] = RateLimited,
) -> None:
    """Count one request of `client` against limit `name`; raise `error` (429, Retry-After) past it."""
    window = settings.RATE_LIMIT_WINDOW_SECONDS
    start = datetime.fromtimestamp(now.timestamp() // window * window, now.tzinfo)
    key = f"{name}:{client_bucket(client.ip_address)}"
    async with sessionmaker() as db:
        await db.execute(text("SET LOCAL synchronous_commit = off"))
        statement = insert(RateLimitHit).values(key=key, window_start=start, hits=1)
        hits = await db.scalar(
            statement.on_conflict_do_update(
                index_elements=[RateLimitHit.key, RateLimitHit.window_start],
                set_={"hits": RateLimitHit.hits + 1},
            ).returning(RateLimitHit.hits)
        )
        if hits == 1 and random.random() < PRUNE_PROBABILITY:  # noqa: S311 - not security-relevant
            await db.execute(delete(RateLimitHit).where(RateLimitHit.window_start < now - PRUNE_AFTER))
        limited = hits is not None and hits > limit
        if limited and hits == limit + 1:  # one audit row per window, not one per refused request
            await record(db, AuditEvent.RATE_LIMITED, now=now, client=client, reason=name)
        await db.commit()
    if limited:
        wait = (start + timedelta(seconds=window) - now).total_seconds()
        raise error(headers=_retry_after(wait))


@dataclass(frozen=True)
class ThrottleState:
    failures: int
    last_failure_at: datetime | None


async def throttle_state(db: AsyncSession, email: str) -> ThrottleState:
    row = await db.get(LoginThrottle, email)
    return ThrottleState(row.failures, row.last_failure_at) if row else ThrottleState(0, None)


def delay_for(failures: int, settings: Settings) -> float:
    if failures < settings.LOGIN_FREE_ATTEMPTS:
        return 0.0
    exponent = min(failures - settings.LOGIN_FREE_ATTEMPTS, 32)
    return float(min(settings.LOGIN_DELAY_BASE_SECONDS * 2**exponent, settings.LOGIN_DELAY_MAX_SECONDS))


def check_login_allowed(state: ThrottleState, settings: Settings, now: datetime) -> None:
    """Raise before any password check when this email must wait, or must reset its password."""
    if state.failures >= settings.LOGIN_MAX_FAILURES:
        raise PasswordResetRequired()
    delay = delay_for(state.failures, settings)
    if state.last_failure_at is None or delay == 0:
        # Within the free attempts nothing waits, also when a concurrent failure was stamped later.
        return
    wait = (state.last_failure_at + timedelta(seconds=delay) - now).total_seconds()
    if wait > 0:
        raise LoginThrottled(headers=_retry_after(wait))


async def count_failure(db: AsyncSession, email: str, now: datetime) -> int:
    """One more consecutive failure, atomically: concurrent failures are each counted."""
    statement = insert(LoginThrottle).values(email=email, failures=1, last_failure_at=now)
    failures = await db.scalar(
        statement.on_conflict_do_update(
            index_elements=[LoginThrottle.email],
            set_={"failures": LoginThrottle.failures + 1, "last_failure_at": now},
        ).returning(LoginThrottle.failures)
    )
    return int(failures or 0)


async def clear_failures(db: AsyncSession, email: str) -> None:
    await db.execute(delete(LoginThrottle).where(LoginThrottle.email == email))
