"""What the passkeys domain refuses, as status-coded errors (rendered by `app.core.error_handlers`)."""

import hashlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.context import RequestContext
from app.core.errors import PyauthError, RolledBackRefusal
from app.passkeys import repository


class PasskeyNotFound(PyauthError):
    status_code = 404
    code = "passkey_not_found"
    message = "No such passkey."


class PasskeyInvalid(PyauthError):
    """The browser's answer to a ceremony failed a check; which one is audited, never told."""

    status_code = 400
    code = "passkey_invalid"
    message = "The passkey response could not be verified. Start again with new options."


class PasskeyAlreadyRegistered(PyauthError):
    status_code = 409
    code = "passkey_already_registered"
    message = "This passkey is registered already."


class TooManyPasskeys(PyauthError):
    status_code = 409
    code = "too_many_passkeys"
    message = "This account has as many passkeys as it may have. Remove one first."


class PasskeyRefused(RolledBackRefusal):
    """A refused assertion: the request's writes are rolled back, then the challenge it answered is spent
    (a refused answer cannot be retried with it) and the refusal audited, both committed.

    Answered with `error` (`PasskeyInvalid` unless the caller sets another, e.g. the MFA grant's OAuth
    `invalid_grant`). `reason` is the audit code: unreadable, unknown_credential, wrong_user, inactive,
    challenge, verification, backup_eligibility, counter_race, counter (the last as
    `passkey.clone_suspected`)."""

    def __init__(
        self,
        *,
        db: AsyncSession,
        ctx: RequestContext,
        reason: str,
        challenge: bytes | None,
        user_id: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
        error: PyauthError | None = None,
    ) -> None:
        super().__init__(error or PasskeyInvalid(), db=db)
        self.ctx, self.reason, self.challenge = ctx, reason, challenge
        self.user_id, self.details = user_id, details

    async def keep(self, db: AsyncSession) -> None:
        if self.challenge is not None:
            await repository.discard_challenge(db, hashlib.sha256(self.challenge).digest())
        event = (
            AuditEvent.PASSKEY_CLONE_SUSPECTED
            if self.reason == "counter"
            else AuditEvent.PASSKEY_ASSERTION_FAILED
        )
        await record(db, event, ctx=self.ctx, user_id=self.user_id, reason=self.reason, details=self.details)
