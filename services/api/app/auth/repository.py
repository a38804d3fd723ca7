"""Queries on sessions and refresh tokens. Functions flush or execute; the request commits."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
