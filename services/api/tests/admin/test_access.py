"""Only administrators reach the admin endpoints: 403 `admin_required` for a valid non-admin token,
401 without one, and the role is read from the database, not from the token."""

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.users.models import User
from tests.admin.helpers import admin_account, user_account

TARGET = "{target}"
ADMIN_ENDPOINTS = [
    ("GET", "/admin/users", None),
    ("GET", f"/admin/users/{TARGET}", None),
    ("POST", f"/admin/users/{TARGET}/activate", None),
    ("POST", f"/admin/users/{TARGET}/deactivate", None),
    ("PUT", f"/admin/users/{TARGET}/roles", {"roles": ["user", "admin"]}),
    ("DELETE", f"/admin/users/{TARGET}", None),
    ("POST", f"/admin/users/{TARGET}/sessions/revoke", None),
    ("GET", "/admin/audit", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
async def test_a_non_admin_gets_403_and_changes_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession, method: str, path: str, body: object
) -> None:
    caller = await user_account(client)
    target = await user_account(client)
    response = await client.request(method, path.format(target=target.id), json=body, headers=caller.bearer)
    assert response.status_code == 403, response.text
    assert response.json() == {"error": "admin_required", "detail": "This action requires the admin role."}
    after = await db_session.get(User, target.id)
    assert after is not None
    assert after.is_active
    assert after.roles == ["user"]
    assert (await client.get("/users/me", headers=target.bearer)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
async def test_without_a_token_the_answer_is_401(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    response = await client.request(method, path.format(target=uuid.uuid4()), json=body)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_a_non_admin_cannot_probe_with_malformed_ids(client: httpx.AsyncClient) -> None:
    caller = await user_account(client)
    response = await client.get("/admin/users/not-a-uuid", headers=caller.bearer)
    assert response.status_code == 403


async def test_the_role_is_read_from_the_database_not_the_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Granted in the database, the role works with a token issued before; removed, it stops at once."""
    admin = await admin_account(client, db_session)
    other_admin = await admin_account(client, db_session)
    assert (await client.get("/admin/users", headers=other_admin.bearer)).status_code == 200

    demoted = await client.put(
        f"/admin/users/{other_admin.id}/roles", json={"roles": ["user"]}, headers=admin.bearer
    )
    assert demoted.status_code == 200, demoted.text
    response = await client.get("/admin/users", headers=other_admin.bearer)
    assert response.status_code == 403
    assert response.json()["error"] == "admin_required"


async def test_admin_responses_are_not_cached(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    for path in ("/admin/users", f"/admin/users/{admin.id}", "/admin/audit"):
        response = await client.get(path, headers=admin.bearer)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
