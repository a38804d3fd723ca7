"""Queries on `authorization_codes` and `app_grants`."""

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.models import OAuthClient
from app.oidc.models import AppGrant, AuthorizationCode


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


async def grant_of(db: AsyncSession, user_id: uuid.UUID, client_id: str) -> AppGrant | None:
    return await db.get(AppGrant, (user_id, client_id))


async def save_grant(
    db: AsyncSession, user_id: uuid.UUID, client_id: str, scopes: list[str], now: datetime
) -> None:
    statement = insert(AppGrant).values(user_id=user_id, client_id=client_id, scopes=scopes, granted_at=now)
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=[AppGrant.user_id, AppGrant.client_id],
            set_={"scopes": statement.excluded.scopes, "granted_at": statement.excluded.granted_at},
        )
    )


async def grants_of(db: AsyncSession, user_id: uuid.UUID) -> list[tuple[AppGrant, str]]:
    """The user's grants with each client's name, newest first."""
    rows = await db.execute(
        select(AppGrant, OAuthClient.name)
        .join(OAuthClient, OAuthClient.client_id == AppGrant.client_id)
        .where(AppGrant.user_id == user_id)
        .order_by(AppGrant.granted_at.desc())
    )
    return [(grant, name) for grant, name in rows]


async def delete_grant(db: AsyncSession, user_id: uuid.UUID, client_id: str) -> bool:
    result = await db.execute(
        delete(AppGrant)
        .where(AppGrant.user_id == user_id, AppGrant.client_id == client_id)
        .returning(AppGrant.client_id)
    )
    return result.first() is not None


async def sessions_from_browser_session(
    db: AsyncSession, *, browser_session_id: uuid.UUID, client_id: str
) -> list[uuid.UUID]:
    """The sessions that the codes of one browser session started for the client."""
    rows = await db.scalars(
        select(AuthorizationCode.session_id).where(
            AuthorizationCode.browser_session_id == browser_session_id,
            AuthorizationCode.client_id == client_id,
            AuthorizationCode.session_id.is_not(None),
        )
    )
    return [session_id for session_id in dict.fromkeys(rows) if session_id is not None]
