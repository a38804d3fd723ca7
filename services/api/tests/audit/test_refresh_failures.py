"""Invalid and reused refresh tokens are audited (ASVS 16.3.2: failed authentication is logged), committed
before the error answer rolls the request back, as failed logins are, and without the token."""

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.auth.models import RefreshToken
from app.core.clock import ManualClock
from app.core.opaque_tokens import digest
from tests.auth.helpers import refresh_grant, signed_up, tokens_of

PAST_GRACE = timedelta(seconds=11)
MADE_UP = "a-refresh-token-nobody-was-ever-given-" + "x" * 20


async def _rows_after(db: AsyncSession, first_id: int, event: str) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.id > first_id, AuditEntry.event == event)
    return list(await db.scalars(query.order_by(AuditEntry.id)))


async def test_invalid_and_reused_refresh_tokens_are_audited_asvs_16_3(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    _, first = await signed_up(client)
    user_id = uuid.UUID((await client.get("/users/me", headers=first.bearer)).json()["id"])
    stored = await db_session.get(RefreshToken, digest(first.refresh))
    assert stored is not None
    session_id = stored.session_id
    start = await db_session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0))) or 0

    clock.advance(timedelta(seconds=1))
    second = tokens_of(await refresh_grant(client, first.refresh))
    # A second tab, within the grace window: refused, the session kept.
    assert (await refresh_grant(client, first.refresh)).status_code == 400
    clock.advance(PAST_GRACE)
    # A replay: the session is revoked (its own event, refresh.reuse_detected).
    assert (await refresh_grant(client, first.refresh)).status_code == 400
    # The same replay again, into the ended session; then the unused successor of an ended session.
    assert (await refresh_grant(client, first.refresh)).status_code == 400
    assert (await refresh_grant(client, second.refresh)).status_code == 400
    assert (await refresh_grant(client, MADE_UP)).status_code == 400

    failed = await _rows_after(db_session, start, "refresh.failed")
    assert [(row.reason, row.user_id, row.session_id) for row in failed] == [
        ("concurrent_reuse", user_id, session_id),
        ("token_reused", user_id, session_id),
        ("session_ended", user_id, session_id),
        ("unknown_token", None, None),
    ]
    assert [row.reason for row in await _rows_after(db_session, start, "refresh.reuse_detected")] == [None]
    for row in failed:
        assert row.ip_address == "127.0.0.1"
        stored_text = f"{row.reason} {row.details} {row.user_agent}"
        for token in (first.refresh, second.refresh, MADE_UP):
            assert token not in stored_text


async def test_a_refused_refresh_of_an_ended_session_leaves_the_token_unspent(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The audit row is committed; the claim on the token is not: it stays unused, so presenting it again
    is refused the same way rather than taken for a replay."""
    _, tokens = await signed_up(client)
    assert (await client.post("/auth/logout", headers=tokens.bearer)).status_code == 204
    start = await db_session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0))) or 0

    for _ in range(2):
        assert (await refresh_grant(client, tokens.refresh)).status_code == 400

    stored = await db_session.get(RefreshToken, digest(tokens.refresh))
    assert stored is not None
    assert stored.used_at is None
    reasons = [row.reason for row in await _rows_after(db_session, start, "refresh.failed")]
    assert reasons == ["session_ended", "session_ended"]
