"""Queries on `account_tokens`. Functions flush or execute; the request commits.

Lock order: a flow that writes tokens first locks the owner's `users` row (`lock_owner`), then the
tokens. Issuing, redeeming and ending tokens of one account therefore run one after the other, and no two
of them wait on each other in opposite orders.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.mails import Mail
from app.account.models import AccountToken, TokenPurpose
from app.audit.models import AuditEntry
from app.audit.service import AuditRow
from app.core.database import statement_connection
from app.mail.models import OutboxMail
from app.users.models import User

# A registration in one statement (one round trip, atomic on its own): the account unless its email is
# taken (ON CONFLICT, also under a race between two registrations of one address), and only with it its
# first verification link, the link's mail and the `user.registered` audit row. Answers the account's
# columns (never the password hash), or no row when the email was taken and nothing was written.
_REGISTER = f"""
WITH new_user AS (
  INSERT INTO {User.__tablename__} (id, email, password_hash, locale) VALUES ($1, $2, $3, $4)
  ON CONFLICT (email) DO NOTHING
  RETURNING id, email, display_name, is_active, is_verified, roles, created_at, updated_at, locale
), link AS (
  INSERT INTO {AccountToken.__tablename__} (token_hash, purpose, user_id, email, created_at, expires_at)
  SELECT $5, $6, id, email, $7, $8 FROM new_user
), mail AS (
  INSERT INTO {OutboxMail.__tablename__}
    (id, kind, recipient, subject, body, html_body, created_at, attempts, next_attempt_at)
  SELECT $9, $10, email, $11, $12, $13, $7, 0, $7 FROM new_user
), audit AS (
  INSERT INTO {AuditEntry.__tablename__} (occurred_at, event, user_id, ip_address, user_agent, details)
  SELECT $7, $14, id, $15, $16, $17 FROM new_user
)
SELECT * FROM new_user
"""  # noqa: S608 - table names from the models; every value is a parameter


@dataclass(frozen=True)
class NewAccount:
    """What a registration writes: the account, its first verification link's digest and expiry, the
    link's mail (checked for the outbox) and the audit row; `now` is when, for all of them."""

    user_id: uuid.UUID
    email: str
    password_hash: str
    locale: str
    link_hash: bytes
    link_expires_at: datetime
    mail_id: uuid.UUID
    mail: Mail
    audit: AuditRow
    now: datetime


async def register(db: AsyncSession, account: NewAccount) -> asyncpg.Record | None:
    """`_REGISTER`: the new account's columns, or None when its email was taken (nothing written)."""
    async with statement_connection(db) as connection:
        row: asyncpg.Record | None = await connection.fetchrow(
            _REGISTER,
            account.user_id,
            account.email,
            account.password_hash,
            account.locale,
            account.link_hash,
            TokenPurpose.VERIFY_EMAIL.value,
            account.now,
            account.link_expires_at,
            account.mail_id,
            account.mail.kind,
            account.mail.subject,
            account.mail.body,
            account.mail.html,
            *account.audit.driver_values(),
        )
    return row


async def lock_owner(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user re-read under a row lock (FOR NO KEY UPDATE: inserting their tokens is not blocked)."""
    return await db.get(User, user_id, populate_existing=True, with_for_update={"key_share": True})


async def add(
    db: AsyncSession,
    *,
    token_hash: bytes,
    purpose: TokenPurpose,
    user_id: uuid.UUID,
    email: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    db.add(
        AccountToken(
            token_hash=token_hash,
            purpose=purpose.value,
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await db.flush()


async def find(
    db: AsyncSession, token_hash: bytes, purpose: TokenPurpose | None = None
) -> AccountToken | None:
    """The token row as it is, without a lock (to show a page, or to name the account of a refusal)."""
    query = select(AccountToken).where(AccountToken.token_hash == token_hash)
    if purpose is not None:
        query = query.where(AccountToken.purpose == purpose.value)
    return await db.scalar(query)


async def claim(db: AsyncSession, token_hash: bytes, purpose: TokenPurpose) -> AccountToken | None:
    """The token row, locked and re-read, so that two concurrent uses cannot both succeed."""
    return await db.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_hash, AccountToken.purpose == purpose.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def last_issued_at(db: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose) -> datetime | None:
    return await db.scalar(
        select(func.max(AccountToken.created_at)).where(
            AccountToken.user_id == user_id, AccountToken.purpose == purpose.value
        )
    )


async def spend_all(
    db: AsyncSession, *, user_id: uuid.UUID, purposes: Iterable[TokenPurpose], now: datetime
) -> int:
    """Mark every unused token of these purposes used; returns how many were."""
    result = await db.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose.in_([purpose.value for purpose in purposes]),
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
