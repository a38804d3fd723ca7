"""Unanswered passkey challenges do not pile up: the retention pass deletes them once they expire, and
leaves live ones alone."""

import hashlib
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.passkeys.models import WebAuthnChallenge
from app.retention.service import prune
from tests.conftest import make_settings


async def test_expired_challenges_are_pruned_and_live_ones_kept(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    expiries = {"live": now + timedelta(seconds=60), "expired": now - timedelta(seconds=1)}
    hashes = {name: hashlib.sha256(uuid.uuid4().bytes).digest() for name in expiries}
    for name, expires in expiries.items():
        db_session.add(
            WebAuthnChallenge(
                challenge_hash=hashes[name],
                purpose="authentication",
                user_id=None,
                attempt=None,
                user_verification="required",
                created_at=now - timedelta(seconds=300),
                expires_at=expires,
            )
        )
    await db_session.flush()

    await prune(test_sessionmaker, make_settings(), now)

    db_session.expunge_all()
    left = set(
        (
            await db_session.scalars(
                select(WebAuthnChallenge.challenge_hash).where(
                    WebAuthnChallenge.challenge_hash.in_(hashes.values())
                )
            )
        ).all()
    )
    assert left == {hashes["live"]}
