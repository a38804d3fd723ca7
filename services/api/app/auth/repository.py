"""Queries on sessions and refresh tokens. Functions flush or execute; the request commits."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AuthSession, RefreshToken
from app.clients.models import BUILTIN_CLIENT_ID
from app.users.models import User


@dataclass(frozen=True)
class SessionWithUser:
    session: AuthSession
    user: User


async def create_session(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
    user_agent: str | None,
    ip_address: str | None,
    client_id: str = BUILTIN_CLIENT_ID,
    scopes: Sequence[str] = (),
    amr: Sequence[str] = ("pwd",),
) -> AuthSession:
    auth_session = AuthSession(
        id=uuid.uuid4(),
        user_id=user_id,
        created_at=now,
        last_used_at=now,
        expires_at=expires_at,
        user_agent=user_agent,
        ip_address=ip_address,
        client_id=client_id,
        scopes=list(scopes),
        amr=list(amr),
    )
    db.add(auth_session)
    await db.flush()
    return auth_session


async def add_refresh_token(
    db: AsyncSession, *, session_id: uuid.UUID, token_hash: bytes, now: datetime
) -> None:
    db.add(RefreshToken(token_hash=token_hash, session_id=session_id, created_at=now))
    await db.flush()


async def mark_refresh_token_used(db: AsyncSession, token_hash: bytes, now: datetime) -> uuid.UUID | None:
    """Atomically claim an unused token: of two concurrent claims exactly one gets the session id; the
    other waits on the row lock, then sees `used_at` set and gets None."""
    return await db.scalar(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .returning(RefreshToken.session_id)
    )


async def find_refresh_token(db: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await db.get(RefreshToken, token_hash)


async def session_with_user(db: AsyncSession, session_id: uuid.UUID) -> SessionWithUser | None:
    """One round trip: the session and its user."""
    row = (
        await db.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == session_id)
        )
    ).one_or_none()
    return SessionWithUser(session=row[0], user=row[1]) if row else None


# `sessions.session_is_live` as SQL, for the token's session and user: not revoked, not expired, used
# within the idle TTL ($4 = now - idle TTL), the user active. The user's columns but its password hash.
# (The table names come from the models; every value is a parameter.)
_USER_OF_LIVE_SESSION = f"""
SELECT u.id, u.email, u.display_name, u.is_active, u.is_verified, u.roles, u.created_at, u.updated_at
FROM {AuthSession.__tablename__} AS s JOIN {User.__tablename__} AS u ON u.id = s.user_id
WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 AND s.last_used_at > $4
  AND u.is_active
"""  # noqa: S608


async def user_of_live_session(
    connection: asyncpg.Connection,
    *,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    idle_since: datetime,
) -> asyncpg.Record | None:
    """The session's user if the session is live (see `_USER_OF_LIVE_SESSION`), in one statement on the
    driver's connection (`app.core.database.driver_connection`); None otherwise."""
    row: asyncpg.Record | None = await connection.fetchrow(
        _USER_OF_LIVE_SESSION, session_id, user_id, now, idle_since
    )
    return row


async def touch_session(db: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    await db.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_used_at=now))


async def revoke_sessions(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    now: datetime,
    reason: str,
    session_id: uuid.UUID | None = None,
    except_session_id: uuid.UUID | None = None,
) -> int:
    """Revoke one session of a user, or all of them (optionally but one). Returns how many ended."""
    conditions = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]
    if session_id is not None:
        conditions.append(AuthSession.id == session_id)
    if except_session_id is not None:
        conditions.append(AuthSession.id != except_session_id)
    result = await db.execute(
        update(AuthSession).where(and_(*conditions)).values(revoked_at=now, revoked_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_sessions(
    db: AsyncSession, user_id: uuid.UUID, *, now: datetime, idle_since: datetime
) -> list[AuthSession]:
    result = await db.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            AuthSession.last_used_at > idle_since,
        )
        .order_by(AuthSession.last_used_at.desc())
    )
    return list(result)


async def session_of_refresh_token(db: AsyncSession, token_hash: bytes) -> AuthSession | None:
    """The session a refresh token belongs to, used or not (None for an unknown token)."""
    return await db.scalar(
        select(AuthSession)
        .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
        .where(RefreshToken.token_hash == token_hash)
    )
