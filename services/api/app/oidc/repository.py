"""Queries on `authorization_codes`."""

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.oidc.models import AuthorizationCode


async def add(db: AsyncSession, code: AuthorizationCode) -> AuthorizationCode:
    db.add(code)
    await db.flush()
    return code


async def claim(db: AsyncSession, code_hash: bytes, now: datetime) -> AuthorizationCode | None:
    """Mark the unused code `code_hash` used and return it; None if there is none or it was used. The
    row lock of the UPDATE makes two concurrent exchanges of one code see one claim between them."""
    return await db.scalar(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .returning(AuthorizationCode)
    )


async def find(db: AsyncSession, code_hash: bytes) -> AuthorizationCode | None:
    return await db.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash))


async def set_session(db: AsyncSession, code_id: uuid.UUID, session_id: uuid.UUID) -> None:
    await db.execute(
        update(AuthorizationCode).where(AuthorizationCode.id == code_id).values(session_id=session_id)
    )
