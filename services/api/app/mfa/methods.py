"""The second-factor methods a login can complete with, as the mfa grant and the `mfa_required` answer
see them. Each method names itself in `methods` (`name`), reads one form field of the mfa grant (`field`),
says how to tell whether a user has it (`enrolled`, a condition all methods' are selected with at once)
and checks a value (`verify`), answering the RFC 8176 `amr`
values it proves. `verify` is given the login's `attempt` (an opaque id of its mfa_token), to which a
method whose challenge is issued beforehand (`webauthn`: `POST /auth/mfa/webauthn/options`) binds it.
"""

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, cast

from sqlalchemy import ColumnElement, Select, Uuid, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import DriverStatement
from app.core.models import attribute_columns, read_only
from app.mail import outbox
from app.mfa import mails, recovery_codes, repository, secret_box, totp
from app.mfa.errors import InvalidSecondFactor
from app.passkeys import service as passkeys
from app.passkeys.errors import PasskeyRefused
from app.users.models import User

log = logging.getLogger("pyauth.mfa")


@dataclass(frozen=True)
class Verified:
    amr: tuple[str, ...]  # RFC 8176 values the method adds to the login's


class SecondFactorMethod:
    name: ClassVar[str]  # in `methods`
    field: ClassVar[str]  # the mfa grant's form field that carries it
    max_length: ClassVar[int]
    # Whether having it makes a second factor required (recovery codes only stand in for another factor).
    primary: ClassVar[bool] = True

    def enrolled(self, user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
        """Whether the user has this method, as a SQL condition (`enrolled_methods` selects them all)."""
        raise NotImplementedError

    async def verify(
        self,
        db: AsyncSession,
        user: User,
        value: str,
        *,
        settings: Settings,
        ctx: RequestContext,
        attempt: str,
    ) -> Verified | None:
        raise NotImplementedError


class TotpMethod(SecondFactorMethod):
    name = "otp"
    field = "otp"
    max_length = 16

    def enrolled(self, user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
        return repository.confirmed_totp_exists(user_id)

    async def verify(
        self,
        db: AsyncSession,
        user: User,
        value: str,
        *,
        settings: Settings,
        ctx: RequestContext,
        attempt: str,
    ) -> Verified | None:
        row = await repository.loaded_totp(db, user.id)  # the second step's read holds it
        if row is None or row.confirmed_at is None:
            return None
        secret = secret_box.open_sealed(row.secret_encrypted, user_id=user.id, settings=settings)
        step = totp.matching_step(secret, value, ctx.now)
        if step is None or not await repository.accept_totp_step(db, user.id, step):
            return None
        return Verified(amr=("otp", "mfa"))  # RFC 8176 §2: "otp" covers RFC 6238 codes


class RecoveryCodeMethod(SecondFactorMethod):
    name = "recovery_code"
    field = "recovery_code"
    max_length = 64
    primary = False

    def enrolled(self, user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
        return repository.unused_recovery_code_exists(user_id)

    async def verify(
        self,
        db: AsyncSession,
        user: User,
        value: str,
        *,
        settings: Settings,
        ctx: RequestContext,
        attempt: str,
    ) -> Verified | None:
        if not await repository.use_recovery_code(db, user.id, recovery_codes.digest(value), ctx.now):
            return None
        remaining = await repository.unused_recovery_codes(db, user.id)
        await record(
            db, AuditEvent.MFA_RECOVERY_CODE_USED, ctx=ctx, user_id=user.id, details={"remaining": remaining}
        )
        mail = mails.recovery_code_used(settings, user.locale, remaining=remaining)
        await outbox.enqueue(
            db,
            to=user.email,
            subject=mail.subject,
            body=mail.body,
            html=mail.html,
            kind=mail.kind,
            now=ctx.now,
        )
        log.info("recovery code used user=%s remaining=%d", user.id, remaining)
        # RFC 8176 has no value for a backup code: it is "something you have" that is not an RFC 6238 OTP,
        # so the login is marked `mfa` (a second factor was shown) without claiming "otp".
        return Verified(amr=("mfa",))


class WebAuthnMethod(SecondFactorMethod):
    """A passkey's assertion (AuthenticationResponseJSON, as JSON text) answering the options
    `POST /auth/mfa/webauthn/options` gave for the same mfa_token."""

    name = "webauthn"
    field = "webauthn"
    # An ES256 or RS256 assertion is well under 2 KB in base64url; a large userHandle or extension output
    # still fits. The form's limit bounds what the parsers are handed.
    max_length = 8192

    def enrolled(self, user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
        return passkeys.passkey_enrolled(user_id)

    async def verify(
        self,
        db: AsyncSession,
        user: User,
        value: str,
        *,
        settings: Settings,
        ctx: RequestContext,
        attempt: str,
    ) -> Verified | None:
        try:
            verified = await passkeys.verify_assertion(
                db, value, user=user, settings=settings, ctx=ctx, attempt=attempt
            )
        except PasskeyRefused as refused:
            # The refusal spends the challenge and audits its reason (passkey.assertion_failed or
            # passkey.clone_suspected); the client is told what any wrong second factor tells it.
            refused.error = InvalidSecondFactor()
            raise
        return Verified(amr=(verified.amr, "mfa"))  # RFC 8176 §2: hwk or swk


METHODS: Final[tuple[SecondFactorMethod, ...]] = (TotpMethod(), WebAuthnMethod(), RecoveryCodeMethod())


@functools.cache
def _enrolled_statement() -> Select[*tuple[bool, ...]]:
    """Every method's enrolment condition in one query, built once (for the parameter `enrolled_user_id`)."""
    user_id = bindparam("enrolled_user_id", type_=Uuid())
    return select(*(method.enrolled(user_id) for method in METHODS))


async def enrolled_methods(db: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """The names of the methods that can complete the login of the user `user_id`; empty when no primary
    factor is active (then the password alone signs in). One query for every method."""
    enrolled = (await db.execute(_enrolled_statement(), {"enrolled_user_id": user_id})).one()
    return _usable(enrolled)


@functools.cache
def _account_statement() -> DriverStatement:
    """The account of an email (the parameter `account_email`): its columns, each named as its attribute,
    and every method's enrolment condition on it (`enrolled_<method>`), in one query built and compiled
    for the driver once."""
    email = bindparam("account_email", type_=User.email.type)
    user_id = cast("ColumnElement[uuid.UUID]", User.id)
    return DriverStatement.of(
        select(
            *(column.label(attribute) for attribute, column in _ACCOUNT_COLUMNS),
            *(method.enrolled(user_id).label(f"enrolled_{method.name}") for method in METHODS),
        ).where(User.email == email)
    )


_ACCOUNT_COLUMNS: Final = attribute_columns(User)


async def account_and_methods(db: AsyncSession, email: str) -> tuple[User | None, list[str]]:
    """The account of `email` (None: none) and `enrolled_methods` of it, in one round trip sent to the
    driver: a login reads both before its hash, on every sign-in. The account is read-only (`read_only`):
    the login reads it and writes through statements of its own, never through the object."""
    row = await _account_statement().fetchrow(db, account_email=email)
    if row is None:
        return None, []
    user = read_only(User, {attribute: row[attribute] for attribute, _ in _ACCOUNT_COLUMNS})
    return user, _usable(tuple(row[f"enrolled_{method.name}"] for method in METHODS))


def _usable(enrolled: Sequence[bool]) -> list[str]:
    if not any(has for method, has in zip(METHODS, enrolled, strict=True) if method.primary):
        return []
    return [method.name for method, has in zip(METHODS, enrolled, strict=True) if has]
