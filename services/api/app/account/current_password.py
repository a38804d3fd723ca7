"""The current-password check that every sensitive change of one's own account starts with (a password
change, an email change), and the errors it answers."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import commit_before_refusing, release_connection_before_hashing
from app.core.errors import PyauthError
from app.passwords.hashing import HashQueueFull, PasswordHasher
from app.passwords.policy import normalize_password, refuse_oversized
from app.ratelimit import service as ratelimit
from app.users.models import User

log = logging.getLogger("pyauth.account")


class InvalidCurrentPassword(PyauthError):
    status_code = 400
    code = "invalid_current_password"
    message = "The current password is not correct."


class CurrentPasswordThrottled(PyauthError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many wrong current passwords. Try again later."


class CurrentPasswordLocked(PyauthError):
    status_code = 403
    code = "password_reset_required"
    message = "Too many wrong current passwords: reset the password by mail to go on."


CURRENT_PASSWORD_ERRORS = (InvalidCurrentPassword, CurrentPasswordLocked, CurrentPasswordThrottled)


async def confirm_current_password(
    db: AsyncSession,
    user: User,
    password: str,
    *,
    hasher: PasswordHasher,
    settings: Settings,
    ctx: RequestContext,
    purpose: str,
) -> None:
    """ASVS 6.2.3: counted and throttled per account like a login (reserved before the hash), on a
    counter of its own: anonymous sign-in failures must not lock a signed-in owner out of changing the
    password. Each failure is audited and committed, because the error response that follows rolls the
    request back."""
    refuse_oversized(password, settings)
    hasher.refuse_when_full()
    kind = ratelimit.AttemptKind.REAUTH
    reservation = await ratelimit.reserve_attempt(db, user.email, settings=settings, now=ctx.now, kind=kind)
    if not reservation.granted:
        reason = "reset_required" if reservation.locked else "throttled"
        await record(
            db,
            AuditEvent.CURRENT_PASSWORD_THROTTLED,
            ctx=ctx,
            user_id=user.id,
            reason=reason,
            details={"purpose": purpose},
        )
        await commit_before_refusing(db)
        if reservation.locked:
            raise CurrentPasswordLocked()
        raise CurrentPasswordThrottled(headers=reservation.retry_after_header)
    # The reservation stands whatever the request's outcome, and the hash below runs without a connection.
    await release_connection_before_hashing(db)
    try:
        matched = await hasher.verify(user.password_hash, normalize_password(password))
    except HashQueueFull:
        await ratelimit.release_attempt(db, user.email, kind=kind)
        await commit_before_refusing(db)
        raise
    if not matched:
        await record(
            db,
            AuditEvent.CURRENT_PASSWORD_FAILED,
            ctx=ctx,
            user_id=user.id,
            reason="wrong_password",
            details={"purpose": purpose, "consecutive_failures": reservation.failures},
        )
        await commit_before_refusing(db)
        log.info("current password check failed: %s user=%s", purpose, user.id)
        raise InvalidCurrentPassword()
    await ratelimit.clear_failures(db, user.email, kind)
