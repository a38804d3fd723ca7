"""One bounded batch of deletes per function: at most `batch` rows, found by `ctid` and deleted in the
caller's transaction, so each batch holds its locks only briefly and never rewrites a whole table at once.

`ctid = ANY(ARRAY(SELECT ctid … LIMIT n))` makes the delete a TID scan of exactly the rows found. A row
updated concurrently has a new ctid and is left alone; where an update can make a row live again (a login
failure counted), the condition is repeated on the outer DELETE so the new version is checked too.
Sessions go by id instead: a batch of dead ones is chosen, their refresh tokens are deleted in batches,
then the sessions themselves; a dead session never comes back, so nothing needs checking twice.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# A session is dead once revoked, past its absolute expiry, or idle past SESSION_IDLE_TTL_SECONDS, and
# never comes back (refresh refuses it). It and its refresh tokens are deleted only once it has been dead
# since before `cutoff`, i.e. for the retention margin. Until then its used refresh tokens stay: a
# replayed one is how reuse detection (RFC 9700 §4.14) notices a theft and revokes the session.


async def _delete(db: AsyncSession, sql: str, **params: object) -> int:
    result = await db.execute(text(sql), params)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def dead_session_ids(
    db: AsyncSession, *, cutoff: datetime, idle_ttl: timedelta, batch: int
) -> list[uuid.UUID]:
    """Up to `batch` sessions dead since before `cutoff`: the next ones to delete, tokens first."""
    rows = await db.execute(
        text(
            "SELECT id FROM auth_sessions"
            " WHERE revoked_at < :cutoff OR expires_at < :cutoff OR last_used_at < :idle_cutoff"
            " LIMIT :batch"
        ),
        {"cutoff": cutoff, "idle_cutoff": cutoff - idle_ttl, "batch": batch},
    )
    return list(rows.scalars().all())


async def delete_refresh_tokens_of(db: AsyncSession, session_ids: list[uuid.UUID], *, batch: int) -> int:
    """Up to `batch` refresh tokens of these (dead) sessions, found through ix_refresh_tokens_session_id.
    A session may hold thousands (one per refresh), so they go in batches before the session does."""
    return await _delete(
        db,
        "DELETE FROM refresh_tokens WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM refresh_tokens WHERE session_id = ANY(:ids) LIMIT :batch))",
        ids=session_ids,
        batch=batch,
    )


async def delete_sessions(db: AsyncSession, session_ids: list[uuid.UUID]) -> int:
    """These (dead) sessions; their tokens are gone already, so the cascade finds nothing."""
    return await _delete(db, "DELETE FROM auth_sessions WHERE id = ANY(:ids)", ids=session_ids)


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


async def delete_spent_authorization_codes(db: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Authorization codes that expired before `cutoff` and can end nothing any more: unused ones, and used
    ones whose session is gone (deleting a session sets their `session_id` to NULL). A used code whose
    session still exists is kept however old it is: a replay of it must still end that session
    (RFC 6749 §4.1.2), and the session's own retention decides when it goes."""
    return await _delete(
        db,
        "DELETE FROM authorization_codes WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM authorization_codes"
        " WHERE expires_at < :cutoff AND (used_at IS NULL OR session_id IS NULL) LIMIT :batch))",
        cutoff=cutoff,
        batch=batch,
    )


async def delete_ended_client_secrets(db: AsyncSession, *, cutoff: datetime, batch: int) -> int:
    """Client secrets whose rotation overlap ended before `cutoff`: the token endpoint no longer accepts
    them. A client's current secret (no `expires_at`) is never touched."""
    return await _delete(
        db,
        "DELETE FROM oauth_client_secrets WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM oauth_client_secrets WHERE expires_at < :cutoff LIMIT :batch))",
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


async def delete_expired_login_devices(db: AsyncSession, *, now: datetime, batch: int) -> int:
    """Device tokens past their expiry: they no longer make a login trusted, so nothing reads them."""
    return await _delete(
        db,
        "DELETE FROM login_devices WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM login_devices WHERE expires_at <= :now LIMIT :batch))",
        now=now,
        batch=batch,
    )


async def delete_expired_webauthn_challenges(db: AsyncSession, *, now: datetime, batch: int) -> int:
    """Passkey ceremony challenges past their expiry, never answered: nothing accepts them any more."""
    return await _delete(
        db,
        "DELETE FROM webauthn_challenges WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM webauthn_challenges WHERE expires_at <= :now LIMIT :batch))",
        now=now,
        batch=batch,
    )


async def delete_dead_browser_sessions(
    db: AsyncSession, *, cutoff: datetime, idle_ttl: timedelta, batch: int
) -> int:
    """Browser SSO sessions ended, expired or idle since before `cutoff`: no cookie signs in with them."""
    return await _delete(
        db,
        "DELETE FROM browser_sessions WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM browser_sessions"
        " WHERE ended_at < :cutoff OR expires_at < :cutoff OR last_seen_at < :idle_cutoff LIMIT :batch))",
        cutoff=cutoff,
        idle_cutoff=cutoff - idle_ttl,
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


async def delete_expired_mfa_tokens(db: AsyncSession, *, now: datetime, batch: int) -> int:
    """mfa_tokens past their MFA_TOKEN_TTL_SECONDS, used or not: the mfa grant refuses them either way."""
    return await _delete(
        db,
        "DELETE FROM mfa_tokens WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM mfa_tokens WHERE expires_at < :now LIMIT :batch))",
        now=now,
        batch=batch,
    )
