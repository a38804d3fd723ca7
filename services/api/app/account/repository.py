"""Queries on `account_tokens`. Functions flush or execute; the request commits."""

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.models import AccountToken, TokenPurpose


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


async def claim(db: AsyncSession, token_hash: bytes, purpose: TokenPurpose) -> AccountToken | None:
    """The token row, locked, so that two concurrent uses cannot both succeed."""
    return await db.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_hash, AccountToken.purpose == purpose.value)
        .with_for_update()
    )


async def spend_all(db: AsyncSession, *, user_id: uuid.UUID, purpose: TokenPurpose, now: datetime) -> None:
    """Mark every unused token of this purpose used: a newer link, or a finished flow, retires the rest."""
    await db.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
