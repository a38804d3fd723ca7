"""Refresh tokens: rotation on every use, reuse detection that revokes the family, the grace window for
concurrent refreshes, absolute and idle expiry, and RFC 7009 revocation."""

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.audit.models import AuditEntry
from app.auth.models import AuthSession, RefreshToken
from app.core.clock import ManualClock
from app.core.opaque_tokens import digest
from tests.auth.helpers import live_email, refresh_grant, signed_up, tokens_of
from tests.factories import TEST_IP_ADDRESS, TEST_USER_AGENT
from tests.statements import statements_on

PAST_GRACE = timedelta(seconds=11)


@pytest.fixture(autouse=True, params=["rate limits off", "rate limits on"])
def rate_limits(request: pytest.FixtureRequest) -> bool:
    """Every case twice: with rate limits off the grant rotates in a statement of its own; with them on,
    a refresh's rotation goes in the limit's hit, with the client's read (`service.RotationAhead`)."""
    on: bool = request.param == "rate limits on"
    if on:
        app: FastAPI = request.getfixturevalue("live_app" if "live_app" in request.fixturenames else "app")
        app.state.settings = app.state.settings.model_copy(
            update={"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_TOKEN": 100_000}
        )
    return on


async def test_refresh_rotates_the_token(client: httpx.AsyncClient) -> None:
    _, first = await signed_up(client)
    response = await refresh_grant(client, first.refresh)
    assert response.headers["cache-control"] == "no-store"
    second = tokens_of(response)
    assert second.refresh != first.refresh
    assert (await client.get("/users/me", headers=second.bearer)).status_code == 200


async def test_refresh_tokens_are_stored_only_as_a_digest(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    _, tokens = await signed_up(client)
    stored = await db_session.get(RefreshToken, digest(tokens.refresh))
    assert stored is not None
    raw = [row[0] for row in (await db_session.execute(select(RefreshToken.token_hash))).all()]
    assert tokens.refresh.encode() not in raw


async def test_replay_after_three_rotations_revokes_all_four(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, t1 = await signed_up(client)
    chain = [t1]
    for _ in range(3):
        clock.advance(timedelta(seconds=1))
        chain.append(tokens_of(await refresh_grant(client, chain[-1].refresh)))
    clock.advance(PAST_GRACE)
    replay = await refresh_grant(client, t1.refresh)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    for tokens in chain:
        assert (await refresh_grant(client, tokens.refresh)).status_code == 400
        assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401


async def test_reuse_revocation_survives_the_error_response(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    _, t1 = await signed_up(client)
    tokens_of(await refresh_grant(client, t1.refresh))
    clock.advance(PAST_GRACE)
    await refresh_grant(client, t1.refresh)
    stored = await db_session.get(RefreshToken, digest(t1.refresh))
    assert stored is not None
    auth_session = await db_session.get(AuthSession, stored.session_id)
    assert auth_session is not None
    assert auth_session.revoked_reason == "refresh_token_reuse"


async def test_a_replay_within_the_grace_window_keeps_the_session(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, t1 = await signed_up(client)
    t2 = tokens_of(await refresh_grant(client, t1.refresh))
    clock.advance(timedelta(seconds=2))
    again = await refresh_grant(client, t1.refresh)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "already used" in again.json()["error_description"]
    assert (await refresh_grant(client, t2.refresh)).status_code == 200


async def test_concurrent_refreshes_never_split_the_family(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    _, tokens = await signed_up(live_client, live_email("refresh-race"))
    responses = await asyncio.gather(*(refresh_grant(live_client, tokens.refresh) for _ in range(20)))
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    assert all(r.status_code == 400 for r in responses if r.status_code != 200)
    session_id = (await live_client.get("/auth/sessions", headers=tokens_of(winners[0]).bearer)).json()[0][
        "id"
    ]
    async with engine.connect() as connection:
        unused = await connection.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.session_id == session_id, RefreshToken.used_at.is_(None))
        )
    assert unused == 1, "one live token: the family did not split"
    assert (await refresh_grant(live_client, tokens_of(winners[0]).refresh)).status_code == 200


async def test_a_plain_rotation_on_the_real_pool_begins_no_transaction_and_is_committed(
    live_app: FastAPI, live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """On the app's own pool (not a test's transaction) the client's row and the one-statement rotation go
    to the driver before the request's session has begun a transaction: each runs on its own, so no BEGIN
    and COMMIT round trips, and the rotation is committed by itself, seen at once from another
    connection."""
    _, tokens = await signed_up(live_client, live_email("refresh-autocommit"))
    begun: list[object] = []

    def began(connection: object) -> None:
        begun.append(connection)

    app_engine = live_app.state.sessionmaker.kw["bind"].sync_engine
    event.listen(app_engine, "begin", began)
    try:
        response = await refresh_grant(live_client, tokens.refresh)
    finally:
        event.remove(app_engine, "begin", began)
    assert response.status_code == 200, response.text
    assert begun == []
    async with engine.connect() as connection:
        stored = select(RefreshToken.session_id, RefreshToken.used_at)
        spent, successor = digest(tokens.refresh), digest(tokens_of(response).refresh)
        old = (await connection.execute(stored.where(RefreshToken.token_hash == spent))).one()
        new = (await connection.execute(stored.where(RefreshToken.token_hash == successor))).one()
        refreshed = await connection.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.session_id == old.session_id, AuditEntry.event == "token.refreshed")
        )
    assert old.used_at is not None and new.used_at is None and new.session_id == old.session_id
    assert refreshed == 1


async def test_sessions_expire_after_the_idle_timeout(client: httpx.AsyncClient, clock: ManualClock) -> None:
    _, tokens = await signed_up(client)
    clock.advance(timedelta(days=7, seconds=1))
    assert (await refresh_grant(client, tokens.refresh)).status_code == 400


async def test_use_keeps_a_session_alive_until_its_absolute_lifetime(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    _, tokens = await signed_up(client)
    for _ in range(4):  # 24 days in 6-day steps: never idle for 7 days
        clock.advance(timedelta(days=6))
        tokens = tokens_of(await refresh_grant(client, tokens.refresh))
    clock.advance(timedelta(days=6, seconds=1))  # 30 days and a second: idle only 6 days, but too old
    assert (await refresh_grant(client, tokens.refresh)).status_code == 400


async def test_unknown_refresh_tokens_are_invalid_grant(client: httpx.AsyncClient) -> None:
    response = await refresh_grant(client, "x" * 43)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_revocation_ends_the_session_and_accepts_unknown_tokens(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    assert (await client.post("/auth/revoke", data={"token": tokens.refresh})).status_code == 200
    assert (await refresh_grant(client, tokens.refresh)).status_code == 400
    assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401
    assert (await client.post("/auth/revoke", data={"token": "never-issued"})).status_code == 200
    missing = await client.post("/auth/revoke", data={})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_rfc6749_6_a_plain_rotation_is_one_statement_with_the_same_rows_as_step_by_step(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    connection: AsyncConnection,
    clock: ManualClock,
    rate_limits: bool,
) -> None:
    """The common refresh (an unused token of a live session of the presenting client) claims the token,
    touches the session and writes the successor and the audit row in one statement (with rate limits on,
    the same statement also counts the hit and reads the client); what it leaves is what the step-by-step
    path leaves: the old token spent, one unspent successor, the session's last use moved, one
    `token.refreshed` row with the client's address and User-Agent."""
    _, first = await signed_up(client)
    clock.advance(timedelta(seconds=5))
    driver = (await connection.get_raw_connection()).driver_connection
    tables: tuple[str, ...] = ("refresh_tokens", "audit_events", "auth_sessions")
    if rate_limits:  # the hit's table and the client's are in the one statement too
        tables += ("rate_limit_hits", "oauth_clients")
    with statements_on(*tables, driver=driver) as statements:
        second = tokens_of(await refresh_grant(client, first.refresh))
    assert len(statements) == 1, statements
    first_words = "WITH hit AS ( INSERT INTO rate_limit_hits" if rate_limits else "WITH claimed AS ( UPDATE"
    assert statements[0].startswith(first_words), statements

    old = await db_session.get(RefreshToken, digest(first.refresh))
    new = await db_session.get(RefreshToken, digest(second.refresh))
    assert old is not None and old.used_at == clock.now()
    assert new is not None and new.used_at is None and new.session_id == old.session_id
    auth_session = await db_session.get(AuthSession, old.session_id)
    assert auth_session is not None and auth_session.last_used_at == clock.now()
    rows = (
        await db_session.scalars(
            select(AuditEntry).where(
                AuditEntry.session_id == old.session_id, AuditEntry.event == "token.refreshed"
            )
        )
    ).all()
    assert [(r.user_id, r.occurred_at, r.ip_address, r.user_agent, r.reason, r.details) for r in rows] == [
        (auth_session.user_id, clock.now(), TEST_IP_ADDRESS, TEST_USER_AGENT, None, None)
    ]


async def test_rfc6749_6_a_token_the_one_statement_rotation_does_not_take_changes_nothing_there(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    """A token of an idle-expired session is refused by the step-by-step path, and the one statement that
    ran first wrote nothing: the token stays unspent, no successor, no `token.refreshed` row."""
    _, tokens = await signed_up(client)
    clock.advance(timedelta(days=31))
    assert (await refresh_grant(client, tokens.refresh)).status_code == 400
    stored = await db_session.get(RefreshToken, digest(tokens.refresh))
    assert stored is not None and stored.used_at is None
    family = await db_session.scalar(
        select(func.count()).select_from(RefreshToken).where(RefreshToken.session_id == stored.session_id)
    )
    assert family == 1
    refreshed = await db_session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.session_id == stored.session_id, AuditEntry.event == "token.refreshed")
    )
    assert refreshed == 0
