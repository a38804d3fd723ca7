"""`GET /admin/audit`: filters by user, administrator, event and time range; pages newest first with a
cursor that stays correct when timestamps tie.

Events are written directly with `record()` in a window far in the past, so rows committed by other
tests never fall inside it."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditEvent, record
from app.core.context import RequestContext
from tests.admin.helpers import Account, admin_account

WINDOW_START = datetime(2001, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)
WINDOW = {"since": WINDOW_START.isoformat(), "until": (WINDOW_START + timedelta(days=1)).isoformat()}


async def _seed(db_session: AsyncSession, *events: tuple[AuditEvent, uuid.UUID, int]) -> None:
    """Each event at WINDOW_START + the given number of minutes."""
    for event, user_id, minutes in events:
        await record(
            db_session,
            event,
            ctx=RequestContext.background(WINDOW_START + timedelta(minutes=minutes)),
            user_id=user_id,
            reason=f"m{minutes}",
        )
    await db_session.commit()  # a savepoint of the test's transaction: survives a refused request


async def _get(client: httpx.AsyncClient, admin: Account, **params: Any) -> dict[str, Any]:
    response = await client.get("/admin/audit", params={**WINDOW, **params}, headers=admin.bearer)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _reasons(body: dict[str, Any]) -> list[str]:
    return [item["reason"] for item in body["items"]]


async def test_events_are_filtered_by_user(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await _seed(db_session, (AuditEvent.LOGIN_SUCCEEDED, alice, 1), (AuditEvent.LOGIN_SUCCEEDED, bob, 2))

    body = await _get(client, admin, user_id=str(alice))
    assert [item["user_id"] for item in body["items"]] == [str(alice)]
    assert body["items"][0]["event"] == "login.succeeded"
    assert body["next_cursor"] is None


async def test_events_are_filtered_by_one_or_several_types(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = uuid.uuid4()
    await _seed(
        db_session,
        (AuditEvent.LOGIN_SUCCEEDED, user, 1),
        (AuditEvent.LOGIN_FAILED, user, 2),
        (AuditEvent.LOGOUT, user, 3),
    )
    assert _reasons(await _get(client, admin, event="login.failed")) == ["m2"]
    both = await _get(client, admin, event=["login.failed", "session.logout"])
    assert _reasons(both) == ["m3", "m2"]

    unknown = await client.get("/admin/audit", params={"event": "no.such_event"}, headers=admin.bearer)
    assert unknown.status_code == 422


async def test_events_are_filtered_by_time_range(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    user = uuid.uuid4()
    await _seed(db_session, *((AuditEvent.TOKEN_REFRESHED, user, minutes) for minutes in (0, 10, 20, 30)))

    since = (WINDOW_START + timedelta(minutes=10)).isoformat()
    until = (WINDOW_START + timedelta(minutes=30)).isoformat()
    body = await _get(client, admin, user_id=str(user), since=since, until=until)
    assert _reasons(body) == ["m20", "m10"]  # since inclusive, until exclusive

    naive = await client.get("/admin/audit", params={"since": "2001-02-03T04:05:06"}, headers=admin.bearer)
    assert naive.status_code == 422


async def test_events_page_newest_first_through_timestamp_ties(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = uuid.uuid4()
    await _seed(db_session, *((AuditEvent.LOGIN_FAILED, user, minutes) for minutes in (1, 2, 2, 2, 3)))
    everything = await _get(client, admin, user_id=str(user), limit=200)
    expected = [item["id"] for item in everything["items"]]
    assert len(expected) == 5
    assert _reasons(everything) == ["m3", "m2", "m2", "m2", "m1"]
    assert expected[1:4] == sorted(expected[1:4], reverse=True)

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"user_id": str(user), "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = await _get(client, admin, **params)
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


async def test_a_cursor_not_handed_out_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    for cursor in ("garbage!", "bm90LWEtY3Vyc29y", "x" * 65):
        response = await client.get("/admin/audit", params={"cursor": cursor}, headers=admin.bearer)
        assert response.status_code == 422, cursor
    response = await client.get("/admin/audit", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=admin.bearer)
    assert response.json()["error"] == "invalid_cursor"


async def test_the_limit_is_at_most_200(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    assert (await client.get("/admin/audit", params={"limit": 201}, headers=admin.bearer)).status_code == 422
    assert (await client.get("/admin/audit", params={"limit": 200}, headers=admin.bearer)).status_code == 200


async def test_admin_actions_are_found_by_target_and_by_actor(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    other_admin = await admin_account(client, db_session)
    target = await admin_account(client, db_session)
    await client.post(f"/admin/users/{target.id}/sessions/revoke", headers=admin.bearer)
    await client.post(f"/admin/users/{target.id}/sessions/revoke", headers=other_admin.bearer)

    response = await client.get("/admin/audit", params={"actor_id": str(admin.id)}, headers=admin.bearer)
    [item] = response.json()["items"]
    assert (item["event"], item["actor_id"], item["user_id"]) == (
        "admin.sessions_ended",
        str(admin.id),
        str(target.id),
    )
    by_target = await client.get(
        "/admin/audit",
        params={"user_id": str(target.id), "event": "admin.sessions_ended"},
        headers=admin.bearer,
    )
    assert {item["actor_id"] for item in by_target.json()["items"]} == {str(admin.id), str(other_admin.id)}
