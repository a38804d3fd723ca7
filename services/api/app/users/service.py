"""The rules for accounts: registration under the password policy, profile updates, password change."""

import logging
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.account.pending import end_pending_tokens
from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.sessions import SessionEndReason, end_sessions
from app.core.config import Settings
from app.core.dependencies import ClientInfo
from app.core.errors import PyauthError
from app.core.templating import DEFAULT_LOCALE
from app.passwords.hashing import HashQueueFull, PasswordHasher
from app.passwords.policy import check_new_password, normalize_password, refuse_oversized
from app.ratelimit import service as ratelimit
from app.users import repository
from app.users.emails import canonicalize_email
from app.users.models import User
from app.users.schemas import UserUpdate

log = logging.getLogger("pyauth.users")


class EmailAlreadyRegistered(PyauthError):
    status_code = 409
    code = "email_already_registered"
    message = "An account with this email address already exists."


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


async def register(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    hasher: PasswordHasher,
    settings: Settings,
    locale: str = DEFAULT_LOCALE,
) -> User:
    """A new account; `locale` is the language of its mails (from Accept-Language at registration)."""
    refuse_oversized(password, settings)
    canonical = canonicalize_email(email)
    password = await check_new_password(password, settings=settings, email=canonical)
    # Hash before touching the database: no pooled connection is held while the hash runs, and a taken
    # email answers no faster than a free one. The unique index decides, also under a race.
    password_hash = await hasher.hash(password)
    user = await repository.insert_if_absent(db, canonical, password_hash, locale)
    if user is None:
        raise EmailAlreadyRegistered()
    log.info("registered user=%s", user.id)
    return user


async def confirm_current_password(
    db: AsyncSession,
    user: User,
    password: str,
    *,
    hasher: PasswordHasher,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
    purpose: str,
) -> None:
    """The check every sensitive change of one's own account starts with (ASVS 6.2.3), counted and
    throttled per account like a login (reserved before the hash), on a counter of its own: anonymous
    sign-in failures must not lock a signed-in owner out of changing the password. Each failure is
    audited and committed, because the error response that follows rolls the request back."""
    refuse_oversized(password, settings)
    hasher.refuse_when_full()
    kind = ratelimit.AttemptKind.REAUTH
    reservation = await ratelimit.reserve_attempt(db, user.email, settings=settings, now=now, kind=kind)
    if not reservation.granted:
        reason = "reset_required" if reservation.locked else "throttled"
        await record(
            db,
            AuditEvent.CURRENT_PASSWORD_THROTTLED,
            now=now,
            user_id=user.id,
            client=client,
            reason=reason,
            details={"purpose": purpose},
        )
        await db.commit()
        if reservation.locked:
            raise CurrentPasswordLocked()
        raise CurrentPasswordThrottled(headers=reservation.retry_after_header)
    await db.commit()  # the reservation stands whatever the request's outcome
    try:
        matched = await hasher.verify(user.password_hash, normalize_password(password))
    except HashQueueFull:
        await ratelimit.release_attempt(db, user.email, kind=kind)
        await db.commit()
        raise
    if not matched:
        await record(
            db,
            AuditEvent.CURRENT_PASSWORD_FAILED,
            now=now,
            user_id=user.id,
            client=client,
            reason="wrong_password",
            details={"purpose": purpose, "consecutive_failures": reservation.failures},
        )
        await db.commit()
        log.info("current password check failed: %s user=%s", purpose, user.id)
        raise InvalidCurrentPassword()
    await ratelimit.clear_failures(db, user.email, kind=kind)


async def update_profile(db: AsyncSession, user: User, changes: UserUpdate) -> User:
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(user, field, value)
    await db.flush()
    await db.refresh(user)
    return user


async def change_password(
    db: AsyncSession,
    *,
    user: User,
    current_session_id: uuid.UUID,
    current_password: str,
    new_password: str,
    hasher: PasswordHasher,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
) -> int:
    """Returns how many other sessions were ended."""
    await confirm_current_password(
        db,
        user,
        current_password,
        hasher=hasher,
        settings=settings,
        now=now,
        client=client,
        purpose="password_change",
    )
    password = await check_new_password(new_password, settings=settings, email=user.email)
    await repository.set_password_hash(db, user.id, await hasher.hash(password))
    await end_pending_tokens(db, user.id, now=now, password_changed=True)
    ended = await end_sessions(
        db,
        SessionEndReason.PASSWORD_CHANGED,
        user_id=user.id,
        now=now,
        client=client,
        except_session_id=current_session_id,
    )
    await record(
        db,
        AuditEvent.PASSWORD_CHANGED,
        now=now,
        user_id=user.id,
        session_id=current_session_id,
        client=client,
        details={"sessions_ended": ended},
    )
    log.info("password changed user=%s other_sessions_ended=%d", user.id, ended)
    return ended
