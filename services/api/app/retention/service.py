"""The retention pass: what is deleted, and when.

- sessions and their refresh tokens: revoked, expired or idle for RETENTION_SESSIONS_SECONDS;
- account tokens: expired for RETENTION_ACCOUNT_TOKENS_SECONDS;
- authorization codes: expired for RETENTION_AUTHORIZATION_CODES_SECONDS, unless used and their session
  still exists (a replay must end it: RFC 6749 §4.1.2); sessions are pruned first, so a code goes in
  the pass that deletes its session;
- client secrets: their rotation overlap over for RETENTION_CLIENT_SECRETS_SECONDS;
- login failure counters: no failure for RETENTION_LOGIN_THROTTLES_SECONDS (and at least the longest
  login delay); never one at LOGIN_MAX_FAILURES, a lock that only a reset lifts;
- device tokens of known devices: once expired (DEVICE_TOKEN_TTL_SECONDS);
- passkey ceremony challenges never answered: once expired (WEBAUTHN_CHALLENGE_TTL_SECONDS);
- mfa_tokens of logins waiting for a second factor: once expired (an expired one is refused like an
  unknown one, so nothing is lost);
- browser SSO sessions: ended, expired or idle for RETENTION_SESSIONS_SECONDS;
- rate-limit windows: started over an hour ago;
- outbox mails: sent or failed (bodies blanked already), queued RETENTION_MAIL_SECONDS ago.

Each kind is deleted in batches of RETENTION_BATCH_SIZE, one transaction per batch, until a batch comes
back short. `run()` repeats the pass every RETENTION_INTERVAL_SECONDS inside the mail worker; running it
in several workers at once is harmless (a row is deleted once; the others skip it).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.config import Settings
from app.retention import repository

log = logging.getLogger("pyauth.retention")

# Rate-limit windows are at most an hour long (RATE_LIMIT_WINDOW_SECONDS ≤ 3600): one that started an
# hour ago is over and never read again.
RATE_LIMIT_WINDOW_RETENTION = timedelta(hours=1)

Batch = Callable[[AsyncSession, int], Awaitable[int]]


def login_throttle_cutoff(settings: Settings, now: datetime) -> datetime:
    """Counters whose last failure is older than this may go: never sooner than the longest login delay
    after it, so deleting one never shortens a delay that is still running."""
    keep = max(settings.RETENTION_LOGIN_THROTTLES_SECONDS, settings.LOGIN_DELAY_MAX_SECONDS)
    return now - timedelta(seconds=keep)


def _batches(settings: Settings, now: datetime) -> dict[str, Batch]:
    """One batch delete per kind that is deleted by a condition alone (sessions are done apart)."""
    tokens_cutoff = now - timedelta(seconds=settings.RETENTION_ACCOUNT_TOKENS_SECONDS)
    codes_cutoff = now - timedelta(seconds=settings.RETENTION_AUTHORIZATION_CODES_SECONDS)
    secrets_cutoff = now - timedelta(seconds=settings.RETENTION_CLIENT_SECRETS_SECONDS)
    throttles_cutoff = login_throttle_cutoff(settings, now)
    windows_cutoff = now - RATE_LIMIT_WINDOW_RETENTION
    mail_cutoff = now - timedelta(seconds=settings.RETENTION_MAIL_SECONDS)
    sessions_cutoff = now - timedelta(seconds=settings.RETENTION_SESSIONS_SECONDS)
    browser_idle = timedelta(seconds=settings.SSO_SESSION_IDLE_TTL_SECONDS)
    return {
        "account_tokens": lambda db, n: repository.delete_expired_account_tokens(
            db, cutoff=tokens_cutoff, batch=n
        ),
        "authorization_codes": lambda db, n: repository.delete_spent_authorization_codes(
            db, cutoff=codes_cutoff, batch=n
        ),
        "client_secrets": lambda db, n: repository.delete_ended_client_secrets(
            db, cutoff=secrets_cutoff, batch=n
        ),
        "login_throttles": lambda db, n: repository.delete_stale_login_throttles(
            db, cutoff=throttles_cutoff, max_failures=settings.LOGIN_MAX_FAILURES, batch=n
        ),
        "login_devices": lambda db, n: repository.delete_expired_login_devices(db, now=now, batch=n),
        "webauthn_challenges": lambda db, n: repository.delete_expired_webauthn_challenges(
            db, now=now, batch=n
        ),
        "mfa_tokens": lambda db, n: repository.delete_expired_mfa_tokens(db, now=now, batch=n),
        "browser_sessions": lambda db, n: repository.delete_dead_browser_sessions(
            db, cutoff=sessions_cutoff, idle_ttl=browser_idle, batch=n
        ),
        "rate_limit_windows": lambda db, n: repository.delete_old_rate_limit_windows(
            db, cutoff=windows_cutoff, batch=n
        ),
        "mails": lambda db, n: repository.delete_finished_mails(db, cutoff=mail_cutoff, batch=n),
    }


def _stopped(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


async def _prune_sessions(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: datetime,
    deleted: dict[str, int],
    stop: asyncio.Event | None,
) -> None:
    """Dead sessions, RETENTION_BATCH_SIZE at a time: their refresh tokens in batches, then the sessions.
    Choosing the sessions first keeps each step an index lookup; a join of all dead sessions with their
    tokens would be scanned again for every batch."""
    size = settings.RETENTION_BATCH_SIZE
    cutoff = now - timedelta(seconds=settings.RETENTION_SESSIONS_SECONDS)
    idle_ttl = timedelta(seconds=settings.SESSION_IDLE_TTL_SECONDS)
    while not _stopped(stop):
        async with sessionmaker.begin() as db:
            session_ids = await repository.dead_session_ids(db, cutoff=cutoff, idle_ttl=idle_ttl, batch=size)
        if not session_ids:
            return
        while not _stopped(stop):
            async with sessionmaker.begin() as db:
                count = await repository.delete_refresh_tokens_of(db, session_ids, batch=size)
            deleted["refresh_tokens"] += count
            if count < size:
                break
        if _stopped(stop):
            return  # the next pass finishes these sessions
        async with sessionmaker.begin() as db:
            deleted["sessions"] += await repository.delete_sessions(db, session_ids)
        if len(session_ids) < size:
            return


async def prune(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: datetime,
    *,
    stop: asyncio.Event | None = None,
) -> dict[str, int]:
    """One pass: delete every kind in bounded batches; how many rows of each kind went. Stops between
    batches when `stop` is set."""
    deleted = {"refresh_tokens": 0, "sessions": 0}
    await _prune_sessions(sessionmaker, settings, now, deleted, stop)
    size = settings.RETENTION_BATCH_SIZE
    for kind, batch in _batches(settings, now).items():
        deleted[kind] = 0
        while not _stopped(stop):
            async with sessionmaker.begin() as db:
                count = await batch(db, size)
            deleted[kind] += count
            if count < size:
                break
    return deleted


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    *,
    stop: asyncio.Event,
) -> None:
    """A pass at once, then every RETENTION_INTERVAL_SECONDS until `stop` is set. A failed pass (the
    database away) is logged and tried again at the next interval: nothing depends on it being prompt."""
    while not stop.is_set():
        try:
            deleted = await prune(sessionmaker, settings, clock.now(), stop=stop)
        except (DBAPIError, PoolTimeoutError, OSError, TimeoutError) as exc:
            log.warning(
                "retention pass failed (%s); next one in %gs",
                type(exc).__name__,
                settings.RETENTION_INTERVAL_SECONDS,
            )
        except Exception:
            log.exception("retention pass failed; next one in %gs", settings.RETENTION_INTERVAL_SECONDS)
        else:
            if any(deleted.values()):
                summary = ", ".join(f"{count} {kind}" for kind, count in deleted.items() if count)
                log.info("retention pass deleted %s", summary, extra={"deleted": deleted})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.RETENTION_INTERVAL_SECONDS)
