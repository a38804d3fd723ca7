"""Retention: an expired mfa_token is deleted by the retention pass (it could only be refused)."""

from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.clock import ManualClock
from app.core.config import Settings
from app.retention.service import prune
from tests.mfa.helpers import enrolled, mfa_token_of


async def test_expired_mfa_tokens_are_pruned_and_live_ones_kept(
    client: httpx.AsyncClient,
    clock: ManualClock,
    connection: AsyncConnection,
    db_session: AsyncSession,
    settings: Settings,
) -> None:
    user = await enrolled(client, clock)
    await mfa_token_of(client, user.email)
    clock.advance(timedelta(seconds=settings.MFA_TOKEN_TTL_SECONDS + 1))
    await mfa_token_of(client, user.email)
    sessions = async_sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    deleted = await prune(sessions, settings, clock.now())
    assert deleted["mfa_tokens"] >= 1
    left = await db_session.scalar(
        text("SELECT count(*) FROM mfa_tokens WHERE user_id = :u"), {"u": user.user_id}
    )
    assert left == 1
