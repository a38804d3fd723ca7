"""Queries on browser sessions. Repositories take a plain `now`."""

import uuid
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.sso.models import BrowserSession


async def add(db: AsyncSession, browser_session: BrowserSession) -> BrowserSession:
    db.add(browser_session)
    await db.flush()
    return browser_session


async def find_live(
    db: AsyncSession, token_hash: bytes, *, now: datetime, idle_since: datetime
) -> BrowserSession | None:
    return await db.scalar(
        select(BrowserSession).where(
            BrowserSession.token_hash == token_hash,
            BrowserSession.ended_at.is_(None),
            BrowserSession.expires_at > now,
            BrowserSession.last_seen_at > idle_since,
        )
    )


async def touch(db: AsyncSession, session_id: uuid.UUID, now: datetime) -> None:
    await db.execute(update(BrowserSession).where(BrowserSession.id == session_id).values(last_seen_at=now))


async def end(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    now: datetime,
    reason: str,
    session_id: uuid.UUID | None = None,
) -> int:
    """End one browser session of the user, or all of them. Returns how many were open."""
    conditions = [BrowserSession.user_id == user_id, BrowserSession.ended_at.is_(None)]
    if session_id is not None:
        conditions.append(BrowserSession.id == session_id)
    result = await db.execute(
        update(BrowserSession).where(and_(*conditions)).values(ended_at=now, ended_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
