"""The account flows. Each sends its mail through the outbox in the same transaction as the change, and
records an audit event.

- Verification: a token mailed at registration (and on request) marks the address verified.
- Forgot / reset: the answer never says whether the account exists; a reset ends every session and every
  pending account token.
- Email change: needs the current password; takes effect only when the new address confirms; the old
  address is warned and gets a link that cancels every pending change.

Mailed links never act on GET (mail scanners prefetch them): `check_link` only reads, for the page that
holds the button; the POST redeems.

Forgot-password and verification mails have a per-account cooldown (MAIL_RECIPIENT_COOLDOWN_SECONDS): a
repeated request within it issues no link and sends no mail, and a newer link never retires an older one,
so nobody can flood an inbox or keep cancelling the owner's link by asking again.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import mails, repository
from app.account.current_password import InvalidCurrentPassword, confirm_current_password
from app.account.models import GRANTING_PURPOSES, AccountToken, TokenPurpose
from app.account.pending import end_pending_tokens
from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.sessions import SessionEndReason, end_sessions
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import PyauthError
from app.core.opaque_tokens import digest, new_token
from app.core.templating import N_
from app.mail.outbox import enqueue
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import check_new_password, refuse_oversized
from app.ratelimit import service as ratelimit
from app.users import repository as user_repository
from app.users.emails import canonicalize_email
from app.users.models import User

log = logging.getLogger("pyauth.account")


class EmailAlreadyRegistered(PyauthError):
    """A registration's or an email change's address is taken."""

    status_code = 409
    code = "email_already_registered"
    message = "An account with this email address already exists."


class TokenInvalid(PyauthError):
    status_code = 400
    code = "token_invalid"
    message = N_("The link is not valid. Ask for a new one.")


class TokenUsed(PyauthError):
    status_code = 400
    code = "token_used"
    message = N_("The link was already used, or a later change to the account ended it. Ask for a new one.")


class TokenExpired(PyauthError):
    status_code = 400
    code = "token_expired"
    message = N_("The link has expired. Ask for a new one.")


class TokenSuperseded(PyauthError):
    status_code = 400
    code = "token_superseded"
    message = N_("The password of the account was changed after this link was sent. Ask for a new one.")


async def _send(db: AsyncSession, to: str, mail: mails.Mail, now: datetime) -> None:
    await enqueue(db, to=to, subject=mail.subject, body=mail.body, html=mail.html, now=now, kind=mail.kind)


async def _issue(
    db: AsyncSession,
    user: User,
    purpose: TokenPurpose,
    *,
    email: str,
    ttl_seconds: int,
    now: datetime,
    retire_older: bool = False,
    lock: bool = True,
) -> str:
    """A new token. The owner's row is locked first (and re-read), so a concurrent password change
    either ends this token or runs after it was issued."""
    if lock:
        await repository.lock_owner(db, user.id)
    if retire_older:
        await repository.spend_all(db, user_id=user.id, purposes=(purpose,), now=now)
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


async def _issue_after_cooldown(
    db: AsyncSession,
    user: User,
    purpose: TokenPurpose,
    *,
    ttl_seconds: int,
    settings: Settings,
    now: datetime,
) -> str | None:
    """A new token for the user's address, or None when one of this purpose was issued less than
    MAIL_RECIPIENT_COOLDOWN_SECONDS ago. Under the owner's row lock, so that two concurrent requests
    cannot both pass. Older tokens stay valid: asking again never cancels the link the owner holds."""
    await repository.lock_owner(db, user.id)
    last = await repository.last_issued_at(db, user.id, purpose)
    if last is not None and now - last < timedelta(seconds=settings.MAIL_RECIPIENT_COOLDOWN_SECONDS):
        return None
    return await _issue(db, user, purpose, email=user.email, ttl_seconds=ttl_seconds, now=now, lock=False)


async def _mail_link_after_cooldown(
    db: AsyncSession,
    user: User,
    purpose: TokenPurpose,
    *,
    ttl_seconds: int,
    mail: Callable[[Settings, str, str], mails.Mail],
    event: AuditEvent,
    settings: Settings,
    ctx: RequestContext,
) -> None:
    """A requested link (verification, reset): issued and mailed unless the cooldown holds it back;
    audited either way, the cooldown as the reason."""
    token = await _issue_after_cooldown(
        db, user, purpose, ttl_seconds=ttl_seconds, settings=settings, now=ctx.now
    )
    if token is not None:
        await _send(db, user.email, mail(settings, token, user.locale), ctx.now)
    await record(db, event, ctx=ctx, user_id=user.id, reason=None if token else "cooldown")


def _refuse_unless_redeemable(found: AccountToken, user: User | None, now: datetime) -> User:
    if found.used_at is not None:
        raise TokenUsed()
    if found.expires_at <= now:
        raise TokenExpired()
    if user is None or not user.is_active:
        raise TokenInvalid()
    if (
        found.purpose in GRANTING_PURPOSES
        and user.password_changed_at is not None
        and found.created_at < user.password_changed_at
    ):
        raise TokenSuperseded()
    return user


async def check_link(db: AsyncSession, *, token: str, purpose: TokenPurpose, ctx: RequestContext) -> None:
    """Raise what redeeming the token would raise first, without writing anything: for the GET page."""
    found = await repository.find(db, digest(token), purpose)
    if found is None:
        raise TokenInvalid()
    _refuse_unless_redeemable(found, await user_repository.get_by_id(db, found.user_id), ctx.now)


async def _redeem(
    db: AsyncSession, token: str, purpose: TokenPurpose, now: datetime
) -> tuple[AccountToken, User]:
    token_hash = digest(token)
    seen = await repository.find(db, token_hash, purpose)
    if seen is None:
        raise TokenInvalid()
    user = await repository.lock_owner(db, seen.user_id)  # the owner first: see repository's lock order
    found = await repository.claim(db, token_hash, purpose)
    if found is None:
        raise TokenInvalid()
    user = _refuse_unless_redeemable(found, user, now)
    found.used_at = now
    return found, user


async def record_refused_link(
    db: AsyncSession, error: PyauthError, *, token: str, purpose: TokenPurpose, ctx: RequestContext
) -> None:
    """Record a refused link, as login failures are (ASVS 16.3). Runs after the request was rolled back
    (`LinkRefused`'s handler), so the link is not spent; the handler commits the record."""
    found = await repository.find(db, digest(token)) if token else None
    await record(
        db,
        AuditEvent.ACCOUNT_LINK_REFUSED,
        ctx=ctx,
        user_id=found.user_id if found else None,
        reason=error.code,
        details={"purpose": purpose.value},
    )
    log.info(
        "link refused: %s purpose=%s user=%s", error.code, purpose.value, found.user_id if found else "-"
    )


async def request_verification(
    db: AsyncSession, *, email: str, settings: Settings, ctx: RequestContext
) -> None:
    """Mail a new verification link if an active, unverified account has this address and no link went
    out within the cooldown. Says nothing."""
    user = await _find_quietly(db, email)
    if user is None or user.is_verified or not user.is_active:
        return
    await _mail_link_after_cooldown(
        db,
        user,
        TokenPurpose.VERIFY_EMAIL,
        ttl_seconds=settings.VERIFICATION_TOKEN_TTL_SECONDS,
        mail=mails.verify_email,
        event=AuditEvent.VERIFICATION_REQUESTED,
        settings=settings,
        ctx=ctx,
    )


async def confirm_verification(db: AsyncSession, *, token: str, ctx: RequestContext) -> User:
    found, user = await _redeem(db, token, TokenPurpose.VERIFY_EMAIL, ctx.now)
    if found.email != user.email:
        raise TokenInvalid()  # the address changed since the link was sent
    user.is_verified = True
    await repository.spend_all(db, user_id=user.id, purposes=(TokenPurpose.VERIFY_EMAIL,), now=ctx.now)
    await db.flush()
    await record(db, AuditEvent.EMAIL_VERIFIED, ctx=ctx, user_id=user.id)
    log.info("email verified user=%s", user.id)
    return user


async def forgot_password(db: AsyncSession, *, email: str, settings: Settings, ctx: RequestContext) -> None:
    user = await _find_quietly(db, email)
    if user is None or not user.is_active:
        return
    await _mail_link_after_cooldown(
        db,
        user,
        TokenPurpose.RESET_PASSWORD,
        ttl_seconds=settings.RESET_TOKEN_TTL_SECONDS,
        mail=mails.reset_password,
        event=AuditEvent.PASSWORD_RESET_REQUESTED,
        settings=settings,
        ctx=ctx,
    )


async def reset_password(
    db: AsyncSession,
    *,
    token: str,
    new_password: str,
    hasher: PasswordHasher,
    settings: Settings,
    ctx: RequestContext,
) -> None:
    now = ctx.now
    refuse_oversized(new_password, settings)
    found, user = await _redeem(db, token, TokenPurpose.RESET_PASSWORD, now)
    if found.email != user.email:
        raise TokenInvalid()
    password = await check_new_password(new_password, settings=settings, email=user.email)
    await user_repository.set_password_hash(db, user.id, await hasher.hash(password))
    # Opening the mailed link proves the address, so a reset also verifies it.
    user.is_verified = True
    tokens_ended = await end_pending_tokens(db, user.id, now=now, password_changed=True)
    await ratelimit.clear_failures(db, user.email)
    ended = await end_sessions(db, SessionEndReason.PASSWORD_RESET, user_id=user.id, ctx=ctx)
    await _send(db, user.email, mails.password_changed(settings, user.locale), now)
    await record(
        db,
        AuditEvent.PASSWORD_RESET,
        ctx=ctx,
        user_id=user.id,
        details={"sessions_ended": ended, "pending_links_ended": tokens_ended},
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
    ctx: RequestContext,
) -> None:
    await confirm_current_password(
        db, user, current_password, hasher=hasher, settings=settings, ctx=ctx, purpose="email_change"
    )
    now = ctx.now
    checked_hash = user.password_hash
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
        retire_older=True,
    )
    # _issue re-read the user under its lock: a password changed meanwhile makes the check above stale.
    if user.password_hash != checked_hash or not user.is_active:
        raise InvalidCurrentPassword()
    cancel = await _issue(
        db,
        user,
        TokenPurpose.CANCEL_EMAIL_CHANGE,
        email=user.email,
        ttl_seconds=settings.EMAIL_CHANGE_TOKEN_TTL_SECONDS,
        now=now,
        lock=False,  # held since the token above
    )
    await _send(db, canonical, mails.confirm_email_change(settings, token, user.locale), now)
    await _send(db, user.email, mails.email_change_requested(settings, canonical, cancel, user.locale), now)
    await record(db, AuditEvent.EMAIL_CHANGE_REQUESTED, ctx=ctx, user_id=user.id)


async def confirm_email_change(
    db: AsyncSession, *, token: str, settings: Settings, ctx: RequestContext
) -> User:
    now = ctx.now
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
    await repository.spend_all(
        db, user_id=user.id, purposes=(TokenPurpose.VERIFY_EMAIL, TokenPurpose.RESET_PASSWORD), now=now
    )
    await _send(db, old_email, mails.email_changed(settings, user.email, user.locale), now)
    await record(db, AuditEvent.EMAIL_CHANGED, ctx=ctx, user_id=user.id)
    log.info("email changed user=%s", user.id)
    return user


async def cancel_email_change(db: AsyncSession, *, token: str, ctx: RequestContext) -> int:
    """The old address's link: end every pending email change of the account. Returns how many."""
    _, user = await _redeem(db, token, TokenPurpose.CANCEL_EMAIL_CHANGE, ctx.now)
    cancelled = await repository.spend_all(
        db, user_id=user.id, purposes=(TokenPurpose.CHANGE_EMAIL,), now=ctx.now
    )
    await record(
        db,
        AuditEvent.EMAIL_CHANGE_CANCELLED,
        ctx=ctx,
        user_id=user.id,
        details={"pending_changes_cancelled": cancelled},
    )
    log.info("email change cancelled user=%s pending=%d", user.id, cancelled)
    return cancelled


async def _find_quietly(db: AsyncSession, email: str) -> User | None:
    try:
        return await user_repository.get_by_email(db, canonicalize_email(email))
    except PyauthError:
        return None
