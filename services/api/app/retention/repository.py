"""One bounded batch of deletes per function: at most `batch` rows, found by `ctid` and deleted in the
caller's transaction, so each batch holds its locks only briefly and never rewrites a whole table at once.

`ctid = ANY(ARRAY(SELECT ctid … LIMIT n))` makes the delete a TID scan of exactly the rows found. A row
updated concurrently has a new ctid and is left alone; where an update can make a row live again (a login
failure counted), the condition is repeated on the outer DELETE so the new version is checked too. A dead
session never comes back (refresh refuses it), so its rows need no such check.
"""

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# A session is dead once revoked, past its absolute expiry, or idle past SESSION_IDLE_TTL_SECONDS; the
# two session deletes below take it (and its tokens) only once it has been dead since before `cutoff`,
# i.e. for the retention margin. Until then its used refresh tokens stay: a replayed one is how reuse
# detection (RFC 9700 §4.14) notices a theft and revokes the session.


async def _delete(db: AsyncSession, sql: str, **params: object) -> int:
    result = await db.execute(text(sql), params)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_refresh_tokens_of_dead_sessions(
    db: AsyncSession, *, cutoff: datetime, idle_ttl: timedelta, batch: int
) -> int:
    """Refresh tokens of sessions dead since before `cutoff`: first, so that the sessions' own delete
    below cascades to nothing and stays bounded."""
    return await _delete(
        db,
        "DELETE FROM refresh_tokens WHERE ctid = ANY(ARRAY("
        " SELECT t.ctid FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id"
        " WHERE (s.revoked_at < :cutoff OR s.expires_at < :cutoff OR s.last_used_at < :idle_cutoff)"
        " LIMIT :batch))",
        cutoff=cutoff,
        idle_cutoff=cutoff - idle_ttl,
        batch=batch,
    )


async def delete_dead_sessions(db: AsyncSession, *, cutoff: datetime, idle_ttl: timedelta, batch: int) -> int:
    """Sessions dead since before `cutoff` (their refresh tokens go with them, by cascade)."""
    return await _delete(
        db,
        "DELETE FROM auth_sessions WHERE ctid = ANY(ARRAY("
        " SELECT s.ctid FROM auth_sessions s"
        " WHERE (s.revoked_at < :cutoff OR s.expires_at < :cutoff OR s.last_used_at < :idle_cutoff)"
        " LIMIT :batch))",
        cutoff=cutoff,
        idle_cutoff=cutoff - idle_ttl,
        batch=batch,
    )


async def delete_expired_account_tokens(db: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Verification, reset and email-change tokens that expired before `cutoff`, used or not: until it
    expires a used token still answers "already used" rather than "unknown"."""
    return await _delete(
        db,
        "DELETE FROM account_tokens WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM account_tokens WHERE expires_at < :cutoff LIMIT :batch))",
        cutoff=cutoff,
        batch=batch,
    )


async def delete_stale_login_throttles(
    db: AsyncSession, *, cutoff: datetime, max_failures: int, batch: int
) -> int:
    """Failure counters whose last failure is older than `cutoff` (which the caller keeps beyond the
    longest login delay, so a deleted row no longer delays anyone). A row at `max_failures` is a lock
    that only a password reset lifts: it is never deleted here.

    Kept to `last_failure_at` and `failures` only, so that a reshaped throttle table (a different key)
    needs no change here."""
    return await _delete(
        db,
        "DELETE FROM login_throttles WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM login_throttles"
        " WHERE last_failure_at < :cutoff AND failures < :max_failures LIMIT :batch))"
        " AND last_failure_at < :cutoff AND failures < :max_failures",
        cutoff=cutoff,
        max_failures=max_failures,
        batch=batch,
    )


async def delete_old_rate_limit_windows(db: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Per-IP counters of windows that started before `cutoff`."""
    return await _delete(
        db,
        "DELETE FROM rate_limit_hits WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM rate_limit_hits WHERE window_start < :cutoff LIMIT :batch))",
        cutoff=cutoff,
        batch=batch,
    )


async def delete_finished_mails(db: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Outbox rows queued before `cutoff` that were sent or failed for good (pending ones stay)."""
    return await _delete(
        db,
        "DELETE FROM mail_outbox WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM mail_outbox"
        " WHERE created_at < :cutoff AND (sent_at IS NOT NULL OR failed_at IS NOT NULL) LIMIT :batch))",
        cutoff=cutoff,
        batch=batch,
    )
