"""Issue 10 item 6: the transactions that differ from one commit per request, each behind a name.

- `in_own_transaction`: what it writes is committed whatever the caller's transaction does next;
- `release_connection_before_hashing`: the pooled connection is back in the pool before a hash runs;
- `LinkRefused` (a `RolledBackRefusal`): its handler rolls the request back and keeps only the audited
  refusal, then answers as the page or endpoint did.
"""

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.account.models import AccountToken
from app.audit.models import AuditEntry
from app.core.database import build_sessionmaker, in_own_transaction, release_connection_before_hashing
from app.core.opaque_tokens import digest
from app.ratelimit.models import RateLimitHit
from tests.account.helpers import last_mail_to
from tests.auth.helpers import signed_up


class RequestFailed(Exception):
    pass


async def test_in_own_transaction_commits_although_the_callers_transaction_rolls_back(
    engine: AsyncEngine,
) -> None:
    sessionmaker = build_sessionmaker(engine)
    key = f"test-own-transaction:{uuid.uuid4()}"
    window = datetime.now(UTC).replace(microsecond=0)
    try:
        with pytest.raises(RequestFailed):
            async with sessionmaker() as request_db, request_db.begin():
                await request_db.execute(select(1))  # the request's own transaction is open
                async with in_own_transaction(sessionmaker) as db:
                    await db.execute(insert(RateLimitHit).values(key=key, window_start=window, hits=1))
                raise RequestFailed  # the request fails: its transaction rolls back
        async with sessionmaker() as db:
            assert await db.scalar(select(RateLimitHit.hits).where(RateLimitHit.key == key)) == 1
    finally:
        async with sessionmaker() as db, db.begin():
            await db.execute(delete(RateLimitHit).where(RateLimitHit.key == key))


async def test_release_connection_before_hashing_gives_the_pooled_connection_back(
    engine: AsyncEngine,
) -> None:
    async with build_sessionmaker(engine)() as db:
        await db.execute(select(1))
        held = engine.pool.checkedout()  # type: ignore[attr-defined]
        await release_connection_before_hashing(db)
        assert engine.pool.checkedout() == held - 1  # type: ignore[attr-defined]
        assert not db.in_transaction()


async def test_a_refused_link_form_is_rolled_back_by_its_error_handler_and_keeps_only_its_refusal(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The reset form claims the link, then refuses the weak password: the handler of `LinkRefused` rolls
    the claim back (the link stays unspent), commits the audit row, and answers the same page as before."""
    email, _ = await signed_up(client)
    await client.post("/auth/password/forgot", json={"email": email})
    token = (await last_mail_to(db_session, email, "reset_password")).token

    page = await client.post("/auth/password/reset/form", data={"token": token, "new_password": "short"})

    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "Password not changed" in page.text
    row = await db_session.scalar(select(AccountToken).where(AccountToken.token_hash == digest(token)))
    assert row is not None and row.used_at is None
    refusal = await db_session.scalar(
        select(AuditEntry)
        .where(AuditEntry.event == "account.link_refused", AuditEntry.user_id == row.user_id)
        .order_by(AuditEntry.id.desc())
    )
    assert refusal is not None
    assert (refusal.reason, refusal.details) == ("password_too_short", {"purpose": "reset_password"})
