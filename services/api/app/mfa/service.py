"""Managing one's own second factors: enrol a TOTP authenticator and confirm it, remove it, replace the
recovery codes, list what is active; and an administrator's reset of a user's factors (`reset_factors`).

Each change needs a recent sign-in (`app.auth.recent_sign_in`): the caller passes the time of the user's
last authentication (`auth_time`: the API session's, or the hosted pages' browser session's), which must be
within MFA_REAUTH_SECONDS, so a stolen long-lived session cannot add or remove a factor. Each finished
change is audited and mailed to the account's address.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.recent_sign_in import require_recent_sign_in
from app.core.config import Settings
from app.core.context import RequestContext
from app.mail import outbox
from app.mfa import mails, recovery_codes, repository, secret_box, totp
from app.mfa.errors import (
    InvalidOtp,
    MfaNotEnabled,
    TotpAlreadyEnabled,
    TotpNotPending,
)
from app.passkeys import service as passkeys
from app.users.models import User

log = logging.getLogger("pyauth.mfa")


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class FactorsReset:
    totp: bool  # an active authenticator was removed
    recovery_codes: int  # unused ones
    passkeys: int

    @property
    def any(self) -> bool:
        return self.totp or self.recovery_codes > 0 or self.passkeys > 0


@dataclass(frozen=True)
class Factors:
    totp_confirmed_at: datetime | None
    recovery_codes_remaining: int


async def _notify(
    db: AsyncSession, user: User, change: mails.FactorChange, *, settings: Settings, now: datetime
) -> None:
    mail = mails.mfa_changed(settings, user.locale, change)
    await outbox.enqueue(
        db, to=user.email, subject=mail.subject, body=mail.body, html=mail.html, kind=mail.kind, now=now
    )


async def enrol_totp(
    db: AsyncSession, user: User, *, auth_time: datetime, settings: Settings, ctx: RequestContext
) -> TotpEnrolment:
    """A new secret, stored encrypted and not yet active (a pending one is replaced)."""
    require_recent_sign_in(auth_time, settings=settings, now=ctx.now)
    secret = totp.new_secret()
    sealed = secret_box.seal(secret, user_id=user.id, settings=settings)
    if not await repository.put_pending_totp(db, user.id, sealed, ctx.now):
        raise TotpAlreadyEnabled()
    return _enrolment(secret, user, settings)


def _enrolment(secret: str, user: User, settings: Settings) -> TotpEnrolment:
    issuer = settings.MFA_TOTP_ISSUER or settings.SERVICE_NAME
    return TotpEnrolment(secret, totp.provisioning_uri(secret, account=user.email, issuer=issuer))


async def pending_totp(db: AsyncSession, user: User, *, settings: Settings) -> TotpEnrolment | None:
    """The enrolment waiting for its confirmation code, if any: the hosted page shows it again after a
    wrong code (the secret stays; a new enrolment would replace it)."""
    row = await repository.get_totp(db, user.id)
    if row is None or row.confirmed_at is not None:
        return None
    return _enrolment(
        secret_box.open_sealed(row.secret_encrypted, user_id=user.id, settings=settings), user, settings
    )


async def confirm_totp(
    db: AsyncSession,
    user: User,
    code: str,
    *,
    auth_time: datetime,
    settings: Settings,
    ctx: RequestContext,
) -> list[str]:
    """Activate the pending authenticator with one valid code; answer the ten recovery codes (only now:
    only their digests are kept)."""
    require_recent_sign_in(auth_time, settings=settings, now=ctx.now)
    row = await repository.get_totp(db, user.id)
    if row is None or row.confirmed_at is not None:
        raise TotpNotPending()
    secret = secret_box.open_sealed(row.secret_encrypted, user_id=user.id, settings=settings)
    step = totp.matching_step(secret, code, ctx.now)
    if step is None:
        raise InvalidOtp()
    if not await repository.confirm_totp(db, user.id, step, ctx.now):
        raise TotpNotPending()  # a concurrent confirmation won
    codes = await _new_recovery_codes(db, user, ctx.now)
    await record(db, AuditEvent.MFA_TOTP_ENABLED, ctx=ctx, user_id=user.id)
    await _notify(db, user, mails.FactorChange.TOTP_ENABLED, settings=settings, now=ctx.now)
    log.info("totp enabled user=%s", user.id)
    return codes


async def remove_totp(
    db: AsyncSession, user: User, *, auth_time: datetime, settings: Settings, ctx: RequestContext
) -> None:
    """Remove the authenticator and, with no factor left, the recovery codes."""
    require_recent_sign_in(auth_time, settings=settings, now=ctx.now)
    if not await repository.delete_totp(db, user.id):
        raise MfaNotEnabled()
    await repository.delete_recovery_codes(db, user.id)
    await record(db, AuditEvent.MFA_TOTP_REMOVED, ctx=ctx, user_id=user.id)
    await _notify(db, user, mails.FactorChange.TOTP_REMOVED, settings=settings, now=ctx.now)
    log.info("totp removed user=%s", user.id)


async def regenerate_recovery_codes(
    db: AsyncSession, user: User, *, auth_time: datetime, settings: Settings, ctx: RequestContext
) -> list[str]:
    require_recent_sign_in(auth_time, settings=settings, now=ctx.now)
    if not await repository.has_confirmed_totp(db, user.id):
        raise MfaNotEnabled()
    codes = await _new_recovery_codes(db, user, ctx.now)
    await record(db, AuditEvent.MFA_RECOVERY_CODES_REGENERATED, ctx=ctx, user_id=user.id)
    await _notify(db, user, mails.FactorChange.RECOVERY_CODES_REGENERATED, settings=settings, now=ctx.now)
    return codes


async def factors(db: AsyncSession, user: User) -> Factors:
    row = await repository.get_totp(db, user.id)
    return Factors(
        totp_confirmed_at=row.confirmed_at if row is not None else None,
        recovery_codes_remaining=await repository.unused_recovery_codes(db, user.id),
    )


async def _new_recovery_codes(db: AsyncSession, user: User, now: datetime) -> list[str]:
    codes = recovery_codes.new_codes()
    await repository.replace_recovery_codes(db, user.id, [recovery_codes.digest(c) for c in codes], now)
    return codes


async def reset_factors(
    db: AsyncSession, user: User, *, settings: Settings, ctx: RequestContext
) -> FactorsReset:
    """Remove every factor of `user`: the authenticator (pending too), the recovery codes and the passkeys,
    so that the password alone signs in again (a lost phone and security key, an account handed over).
    The caller (an admin action) audits it; the user is mailed when anything was removed."""
    reset = FactorsReset(
        totp=await repository.delete_any_totp(db, user.id),
        recovery_codes=await repository.delete_recovery_codes_counted(db, user.id),
        passkeys=await passkeys.remove_all(db, user),
    )
    if reset.any:
        await _notify(db, user, mails.FactorChange.RESET_BY_ADMIN, settings=settings, now=ctx.now)
    log.info(
        "factors reset user=%s totp=%s recovery_codes=%d passkeys=%d",
        user.id,
        reset.totp,
        reset.recovery_codes,
        reset.passkeys,
    )
    return reset
