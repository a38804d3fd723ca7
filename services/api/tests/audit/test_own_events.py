"""`GET /users/me/events`: a user sees their own events and only theirs; an administrator's action says
"by an administrator" and nothing about which one or from where."""

from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditEvent, record
from app.core.clock import ManualClock
from app.core.context import RequestContext
from tests.admin.helpers import admin_account, user_account


async def test_a_user_sees_only_their_own_events(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    alice = await user_account(client)
    bob = await user_account(client)
    client_info = RequestContext(now=clock.now(), ip_address="198.51.100.4", user_agent="alice-phone/1.0")
    await record(
        db_session,
        AuditEvent.LOGIN_FAILED,
        ctx=client_info,
        user_id=alice.id,
        reason="alice",
    )
    await record(
        db_session,
        AuditEvent.LOGIN_FAILED,
        ctx=RequestContext.background(clock.now()),
        user_id=bob.id,
        reason="bob",
    )
    await db_session.commit()  # releases a savepoint of the test's transaction

    response = await client.get("/users/me/events", headers=alice.bearer)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    items = response.json()["items"]
    assert [item["reason"] for item in items if item["reason"] in {"alice", "bob"}] == ["alice"]
    mine = next(item for item in items if item["reason"] == "alice")
    assert mine == {
        "occurred_at": mine["occurred_at"],
        "event": "login.failed",
        "reason": "alice",
        "by_administrator": False,
        "session_id": None,
        "ip_address": "198.51.100.4",
        "user_agent": "alice-phone/1.0",
    }


async def test_an_administrators_action_does_not_name_the_administrator(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    await client.put(
        f"/admin/users/{user.id}/roles",
        json={"roles": ["user"]},
        headers={**admin.bearer, "User-Agent": "ops/1"},
    )

    response = await client.get("/users/me/events", headers=user.bearer)
    [item] = [item for item in response.json()["items"] if item["event"] == "admin.roles_changed"]
    assert item["by_administrator"] is True
    assert (item["ip_address"], item["user_agent"], item["session_id"]) == (None, None, None)
    assert str(admin.id) not in response.text
    assert admin.email not in response.text


async def test_own_events_page_newest_first_with_a_bounded_limit(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    user = await user_account(client)
    old = clock.now().replace(year=2001)
    for minutes in range(3):
        await record(
            db_session,
            AuditEvent.TOKEN_REFRESHED,
            ctx=RequestContext.background(old + timedelta(minutes=minutes)),
            user_id=user.id,
            reason=f"m{minutes}",
        )
    await db_session.commit()

    reasons: list[str | None] = []
    times: list[datetime] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        response = await client.get("/users/me/events", params=params, headers=user.bearer)
        assert response.status_code == 200
        body = response.json()
        assert 1 <= len(body["items"]) <= 2
        reasons += [item["reason"] for item in body["items"]]
        times += [datetime.fromisoformat(item["occurred_at"]) for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert [reason for reason in reasons if reason in {"m0", "m1", "m2"}] == ["m2", "m1", "m0"]
    assert times == sorted(times, reverse=True)

    too_many = await client.get("/users/me/events", params={"limit": 101}, headers=user.bearer)
    assert too_many.status_code == 422
    assert (await client.get("/users/me/events")).status_code == 401
