"""Queries on `account_tokens`. Functions flush or execute; the request commits.

Lock order: a flow that writes tokens first locks the owner's `users` row (`lock_owner`), then the
tokens. Issuing, redeeming and ending tokens of one account therefore run one after the other, and no two
of them wait on each other in opposite orders.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.models import AccountToken, TokenPurpose
from app.users.models import User


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
