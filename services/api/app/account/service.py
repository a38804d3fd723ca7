"""The account flows. Each sends its mail through the outbox in the same transaction as the change, and
records an audit event.

- Verification: a token mailed at registration (and on request) marks the address verified.
- Forgot / reset: the answer never says whether the account exists; a reset ends every session.
- Email change: needs the current password; takes effect only when the new address confirms.
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import mails, repository
from app.account.models import AccountToken, TokenPurpose
from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth import repository as auth_repository
from app.core.config import Settings
from app.core.dependencies import ClientInfo
from app.core.errors import PyauthError
from app.core.opaque_tokens import digest, new_token
from app.mail.outbox import enqueue
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password, refuse_oversized
from app.ratelimit import service as ratelimit
from app.users import repository as user_repository
from app.users.emails import canonicalize_email
from app.users.models import User
from app.users.service import EmailAlreadyRegistered, confirm_current_password

log = logging.getLogger("pyauth.account")


class TokenInvalid(PyauthError):
    status_code = 400
    code = "token_invalid"
    message = "The link is not valid. Ask for a new one."


class TokenUsed(PyauthError):
    status_code = 400
    code = "token_used"
    message = "The link was already used. Ask for a new one."


class TokenExpired(PyauthError):
    status_code = 400
    code = "token_expired"
    message = "The link has expired. Ask for a new one."


async def _send(db: AsyncSession, to: str, mail: mails.Mail, now: datetime) -> None:
    await enqueue(db, to=to, subject=mail.subject, body=mail.body, now=now, kind=mail.kind)


async def _issue(
    db: AsyncSession, user: User, purpose: TokenPurpose, *, email: str, ttl_seconds: int, now: datetime
) -> str:
    await repository.spend_all(db, user_id=user.id, purpose=purpose, now=now)
    token, token_hash = new_token()
    await repository.add(
        db,
        token_hash=token_hash,
        purpose=purpose,
        user_id=user.id,
        email=email,
        now=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    return token


async def _redeem(
    db: AsyncSession, token: str, purpose: TokenPurpose, now: datetime
) -> tuple[AccountToken, User]:
    found = await repository.claim(db, digest(token), purpose)
    if found is None:
        raise TokenInvalid()
    if found.used_at is not None:
        raise TokenUsed()
    if found.expires_at <= now:
        raise TokenExpired()
    user = await user_repository.get_by_id(db, found.user_id)
    if user is None or not user.is_active:
        raise TokenInvalid()
    found.used_at = now
    return found, user


async def send_verification(db: AsyncSession, user: User, *, settings: Settings, now: datetime) -> None:
    token = await _issue(
        db,
        user,
        TokenPurpose.VERIFY_EMAIL,
        email=user.email,
        ttl_seconds=settings.VERIFICATION_TOKEN_TTL_SECONDS,
        now=now,
    )
    await _send(db, user.email, mails.verify_email(settings, token), now)


async def request_verification(
    db: AsyncSession, *, email: str, settings: Settings, now: datetime, client: ClientInfo
) -> None:
    """Mail a new verification link if an active, unverified account has this address. Says nothing."""
    user = await _find_quietly(db, email)
    if user is None or user.is_verified or not user.is_active:
        return
    await send_verification(db, user, settings=settings, now=now)
    await record(db, AuditEvent.VERIFICATION_REQUESTED, now=now, user_id=user.id, client=client)


async def confirm_verification(db: AsyncSession, *, token: str, now: datetime, client: ClientInfo) -> User:
    found, user = await _redeem(db, token, TokenPurpose.VERIFY_EMAIL, now)
    if found.email != user.email:
        raise TokenInvalid()  # the address changed since the link was sent
    user.is_verified = True
    await db.flush()
    await record(db, AuditEvent.EMAIL_VERIFIED, now=now, user_id=user.id, client=client)
    log.info("email verified user=%s", user.id)
    return user


async def forgot_password(
    db: AsyncSession, *, email: str, settings: Settings, now: datetime, client: ClientInfo
) -> None:
    user = await _find_quietly(db, email)
    if user is None or not user.is_active:
        return
    token = await _issue(
        db,
        user,
        TokenPurpose.RESET_PASSWORD,
        email=user.email,
        ttl_seconds=settings.RESET_TOKEN_TTL_SECONDS,
        now=now,
    )
    await _send(db, user.email, mails.reset_password(settings, token), now)
    await record(db, AuditEvent.PASSWORD_RESET_REQUESTED, now=now, user_id=user.id, client=client)


async def reset_password(
    db: AsyncSession,
    *,
    token: str,
    new_password: str,
    hasher: PasswordHasher,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
) -> None:
    refuse_oversized(new_password, settings)
    found, user = await _redeem(db, token, TokenPurpose.RESET_PASSWORD, now)
    if found.email != user.email:
        raise TokenInvalid()
    password = check_new_password(new_password, settings=settings, email=user.email)
    await user_repository.set_password_hash(db, user.id, await hasher.hash(password))
    # Opening the mailed link proves the address, so a reset also verifies it.
    user.is_verified = True
    await repository.spend_all(db, user_id=user.id, purpose=TokenPurpose.RESET_PASSWORD, now=now)
    await ratelimit.clear_failures(db, user.email)
    ended = await auth_repository.revoke_sessions(db, user_id=user.id, now=now, reason="password_reset")
    await _send(db, user.email, mails.password_changed(settings), now)
    await record(
        db,
        AuditEvent.PASSWORD_RESET,
        now=now,
        user_id=user.id,
        client=client,
        details={"sessions_ended": ended},
    )
    log.info("password reset user=%s sessions_ended=%d", user.id, ended)


async def request_email_change(
    db: AsyncSession,
    *,
    user: User,
    new_email: str,
    current_password: str,
    hasher: PasswordHasher,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
) -> None:
    await confirm_current_password(
        db,
        user,
        current_password,
        hasher=hasher,
        settings=settings,
        now=now,
        client=client,
        purpose="email_change",
    )
    canonical = canonicalize_email(new_email)
    if canonical == user.email or await user_repository.get_by_email(db, canonical) is not None:
        raise EmailAlreadyRegistered()
    token = await _issue(
        db,
        user,
        TokenPurpose.CHANGE_EMAIL,
        email=canonical,
        ttl_seconds=settings.EMAIL_CHANGE_TOKEN_TTL_SECONDS,
        now=now,
    )
    await _send(db, canonical, mails.confirm_email_change(settings, token), now)
    await _send(db, user.email, mails.email_change_requested(settings, canonical), now)
    await record(db, AuditEvent.EMAIL_CHANGE_REQUESTED, now=now, user_id=user.id, client=client)


async def confirm_email_change(
    db: AsyncSession, *, token: str, settings: Settings, now: datetime, client: ClientInfo
) -> User:
    found, user = await _redeem(db, token, TokenPurpose.CHANGE_EMAIL, now)
    old_email = user.email
    if await user_repository.get_by_email(db, found.email) is not None:
        raise EmailAlreadyRegistered()
    user.email = found.email
    user.is_verified = True
    try:
        await db.flush()
    except IntegrityError:
        raise EmailAlreadyRegistered() from None  # taken by a registration since the check above
    # Links sent to the old address must not verify or reset anything any more.
    for purpose in (TokenPurpose.VERIFY_EMAIL, TokenPurpose.RESET_PASSWORD):
        await repository.spend_all(db, user_id=user.id, purpose=purpose, now=now)
    await _send(db, old_email, mails.email_changed(settings, user.email), now)
    await record(db, AuditEvent.EMAIL_CHANGED, now=now, user_id=user.id, client=client)
    log.info("email changed user=%s", user.id)
    return user


async def _find_quietly(db: AsyncSession, email: str) -> User | None:
    try:
        return await user_repository.get_by_email(db, canonicalize_email(email))
    except PyauthError:
        return None
