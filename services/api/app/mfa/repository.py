"""Queries of the second factors. Every acceptance of a single-use value (a TOTP step, a recovery code, an
mfa_token) is one conditional UPDATE, so that of two concurrent requests (on two API replicas too)
exactly one is accepted: the second finds the row already changed and matches nothing."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.audit.service import AuditRow
from app.core.database import CteWrite, execute_with_writes
from app.mfa.models import MfaRecoveryCode, MfaToken, MfaTotp
from app.ratelimit.models import LoginDevice
from app.users.models import User

# The statements every mfa grant sends are built once, with bound parameters: building one through
# SQLAlchemy per request cost more CPU than its round trip. The acceptances below are sent on the tables,
# not the mapped classes, so the ORM does no work per execution; the session's copy of a row they change (a
# TOTP row loaded to check the code, a ticket) keeps its old value, which nothing reads after the UPDATE.
# The tables themselves for the statements every login sends (the enrolment conditions, the acceptances):
# no ORM work per execution.
_TOTP = cast(Table, MfaTotp.__table__)
_RECOVERY_CODES = cast(Table, MfaRecoveryCode.__table__)
_MFA_TOKENS = cast(Table, MfaToken.__table__)
# A live ticket: this mfa_token, unspent and unexpired at `mfa_token_now`; read, then spent, by one login.
_LIVE_TICKET = (
    _MFA_TOKENS.c.token_hash == bindparam("mfa_token_hash"),
    _MFA_TOKENS.c.used_at.is_(None),
    _MFA_TOKENS.c.expires_at > bindparam("mfa_token_now"),
)
_TOTP_OF = select(MfaTotp).where(MfaTotp.user_id == bindparam("totp_user_id"))
_LIVE_MFA_TOKEN = select(MfaToken).where(*_LIVE_TICKET)
# The same with its account, the device token its login presented and the account's TOTP authenticator, for
# the second step: one round trip where four were.
_LIVE_TICKET_WITH_ACCOUNT = (
    select(MfaToken, User, LoginDevice, MfaTotp)
    .outerjoin(User, User.id == MfaToken.user_id)
    .outerjoin(LoginDevice, LoginDevice.token_hash == MfaToken.device_token_hash)
    .outerjoin(MfaTotp, MfaTotp.user_id == MfaToken.user_id)
    .where(*_LIVE_TICKET)
)


async def get_totp(db: AsyncSession, user_id: uuid.UUID) -> MfaTotp | None:
    return await db.scalar(_TOTP_OF, {"totp_user_id": user_id})


async def loaded_totp(db: AsyncSession, user_id: uuid.UUID) -> MfaTotp | None:
    """The user's authenticator as this session holds it already (a `LiveTicket` held), else read."""
    return await db.get(MfaTotp, user_id)


# The acceptances (parameters named apart from the columns: a parameter named like a column would be SET).
_ACCEPT_TOTP_STEP = (
    update(_TOTP)
    .where(
        _TOTP.c.user_id == bindparam("totp_user_id"),
        _TOTP.c.confirmed_at.is_not(None),
        _TOTP.c.last_step.is_(None) | (_TOTP.c.last_step < bindparam("totp_step")),
    )
    .values(last_step=bindparam("totp_step"))
    .returning(_TOTP.c.user_id)
)
_USE_RECOVERY_CODE = (
    update(_RECOVERY_CODES)
    .where(
        _RECOVERY_CODES.c.code_hash == bindparam("recovery_code_hash"),
        _RECOVERY_CODES.c.user_id == bindparam("recovery_user_id"),
        _RECOVERY_CODES.c.used_at.is_(None),
    )
    .values(used_at=bindparam("recovery_used_at"))
    .returning(_RECOVERY_CODES.c.code_hash)
)
_SPEND_MFA_TOKEN = (
    update(_MFA_TOKENS)
    .where(*_LIVE_TICKET)
    .values(used_at=bindparam("mfa_token_now"))
    .returning(_MFA_TOKENS.c.token_hash)
)


def confirmed_totp_exists(user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
    """Whether the user has a confirmed TOTP secret, as a condition to select (with other such)."""
    return exists().where(_TOTP.c.user_id == user_id, _TOTP.c.confirmed_at.is_not(None))


def unused_recovery_code_exists(user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
    """Whether the user has a recovery code left, as a condition to select (with other such)."""
    return exists().where(_RECOVERY_CODES.c.user_id == user_id, _RECOVERY_CODES.c.used_at.is_(None))


async def has_confirmed_totp(db: AsyncSession, user_id: uuid.UUID) -> bool:
    return bool(await db.scalar(select(confirmed_totp_exists(user_id))))


async def put_pending_totp(
    db: AsyncSession, user_id: uuid.UUID, secret_encrypted: bytes, now: datetime
) -> bool:
    """Store a new unconfirmed secret, replacing an unconfirmed one; False if a confirmed one exists. One
    upsert, so two enrolments at once cannot collide on the key."""
    upsert = (
        insert(MfaTotp)
        .values(user_id=user_id, secret_encrypted=secret_encrypted, created_at=now)
        .on_conflict_do_update(
            index_elements=[MfaTotp.user_id],
            set_={"secret_encrypted": secret_encrypted, "created_at": now, "last_step": None},
            where=MfaTotp.confirmed_at.is_(None),
        )
        .returning(MfaTotp.user_id)
    )
    return (await db.execute(upsert)).first() is not None


async def confirm_totp(db: AsyncSession, user_id: uuid.UUID, step: int, now: datetime) -> bool:
    """Activate the pending secret with the step of its first code (which is then spent)."""
    result = await db.execute(
        update(MfaTotp)
        .where(MfaTotp.user_id == user_id, MfaTotp.confirmed_at.is_(None))
        .values(confirmed_at=now, last_step=step)
        .returning(MfaTotp.user_id)
    )
    return result.first() is not None


async def accept_totp_step(db: AsyncSession, user_id: uuid.UUID, step: int) -> bool:
    """Spend time step `step`: only if it is later than the last one accepted (RFC 6238 §5.2, no replay)."""
    result = await db.execute(_ACCEPT_TOTP_STEP, {"totp_user_id": user_id, "totp_step": step})
    return result.first() is not None


async def delete_totp(db: AsyncSession, user_id: uuid.UUID) -> bool:
    result = await db.execute(
        delete(MfaTotp)
        .where(MfaTotp.user_id == user_id, MfaTotp.confirmed_at.is_not(None))
        .returning(MfaTotp.user_id)
    )
    return result.first() is not None


async def delete_any_totp(db: AsyncSession, user_id: uuid.UUID) -> bool:
    """The authenticator, confirmed or pending (an admin's reset leaves none); whether one was active."""
    result = await db.execute(
        delete(MfaTotp).where(MfaTotp.user_id == user_id).returning(MfaTotp.confirmed_at)
    )
    return any(confirmed is not None for confirmed in result.scalars())


async def delete_recovery_codes_counted(db: AsyncSession, user_id: uuid.UUID) -> int:
    """Delete the user's recovery codes; how many were unused."""
    result = await db.execute(
        delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id).returning(MfaRecoveryCode.used_at)
    )
    return sum(1 for used_at in result.scalars() if used_at is None)


async def replace_recovery_codes(
    db: AsyncSession, user_id: uuid.UUID, digests: Sequence[bytes], now: datetime
) -> None:
    await delete_recovery_codes(db, user_id)
    db.add_all(MfaRecoveryCode(code_hash=d, user_id=user_id, created_at=now) for d in digests)
    await db.flush()


async def delete_recovery_codes(db: AsyncSession, user_id: uuid.UUID) -> None:
    await db.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))


async def use_recovery_code(db: AsyncSession, user_id: uuid.UUID, code_hash: bytes, now: datetime) -> bool:
    values = {"recovery_code_hash": code_hash, "recovery_user_id": user_id, "recovery_used_at": now}
    result = await db.execute(_USE_RECOVERY_CODE, values)
    return result.first() is not None


async def unused_recovery_codes(db: AsyncSession, user_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(MfaRecoveryCode)
        .where(MfaRecoveryCode.user_id == user_id, MfaRecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


# A password login interrupted for its second factor: its new mfa_token and the `login.mfa_required` audit
# row, after whatever the login had not sent yet (`CteWrite`: its attempt given back), in one statement.
_STORE_MFA_TOKEN = f"""
stored AS (
  INSERT INTO {MfaToken.__tablename__}
    (token_hash, user_id, client_id, device_token_hash, amr, scopes, created_at, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
)
INSERT INTO {AuditEntry.__tablename__} (occurred_at, event, user_id, ip_address, user_agent, details)
VALUES ($7, $9, $2, $10, $11, $12)
"""  # noqa: S608 - table names from the models; every value is a parameter


async def store_mfa_token(
    db: AsyncSession, token: MfaToken, audit: AuditRow, writes: Sequence[CteWrite] = ()
) -> None:
    """`_STORE_MFA_TOKEN` with `writes` (`execute_with_writes`; `audit` dated at the token's creation)."""
    own = (
        token.token_hash,
        token.user_id,
        token.client_id,
        token.device_token_hash,
        list(token.amr),
        list(token.scopes),
        token.created_at,
        token.expires_at,
        *audit.driver_values(),
    )
    await execute_with_writes(db, _STORE_MFA_TOKEN, own, writes)


async def live_mfa_token(db: AsyncSession, token_hash: bytes, now: datetime) -> MfaToken | None:
    return await db.scalar(_LIVE_MFA_TOKEN, {"mfa_token_hash": token_hash, "mfa_token_now": now})


@dataclass(frozen=True)
class LiveTicket:
    """A live mfa_token's row, its account (None if gone), the stored device token its login presented
    (None if it presented none, or that token is gone) and the account's TOTP authenticator (None if
    none). While it is held, the session finds that authenticator without a query (`loaded_totp`: a
    session's identity map holds its rows only as long as something else does)."""

    ticket: MfaToken
    user: User | None
    device: LoginDevice | None
    totp: MfaTotp | None


async def live_ticket(db: AsyncSession, token_hash: bytes, now: datetime) -> LiveTicket | None:
    """`live_mfa_token` with its account, device token and authenticator (`LiveTicket`), in one statement."""
    result = await db.execute(_LIVE_TICKET_WITH_ACCOUNT, {"mfa_token_hash": token_hash, "mfa_token_now": now})
    row = result.first()
    return LiveTicket(*row) if row is not None else None


async def spend_mfa_token(db: AsyncSession, token_hash: bytes, now: datetime) -> bool:
    result = await db.execute(_SPEND_MFA_TOKEN, {"mfa_token_hash": token_hash, "mfa_token_now": now})
    return result.first() is not None
