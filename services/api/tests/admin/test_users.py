"""The `/admin/users` endpoints: list, search, page, read, activate, deactivate, set roles, delete and
end sessions; each change records its audit row with the admin as actor and the user as target."""

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.users.models import User
from tests.admin.helpers import Account, admin_account, audit_rows, claims_of, user_account
from tests.auth.helpers import password_grant, refresh_grant, tokens_of, unique_email


async def _marked_users(client: httpx.AsyncClient, marker: str, count: int) -> list[Account]:
    return [await user_account(client, f"{marker}-{i}@example.org") for i in range(count)]


def _emails(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["email"] for item in response.json()["items"]]


# Reading


async def test_admins_search_users_by_a_case_insensitive_email_substring(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    marker = f"srch{uuid.uuid4().hex[:10]}"
    users = await _marked_users(client, marker, 3)
    await user_account(client)  # not matched

    response = await client.get("/admin/users", params={"email": marker.upper()}, headers=admin.bearer)
    assert sorted(_emails(response)) == sorted(u.email for u in users)
    assert response.json()["total"] == 3
    assert {"id", "email", "is_active", "is_verified", "roles", "created_at"} <= set(
        response.json()["items"][0]
    )
    assert "password_hash" not in response.json()["items"][0]


async def test_like_wildcards_in_the_search_match_literally(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    marker = f"wild{uuid.uuid4().hex[:10]}"
    await _marked_users(client, marker, 2)

    # Unescaped, `_` would match the `-` after the marker and `%` would match every user.
    for needle in (f"{marker}_", f"{marker}%", "%"):
        response = await client.get("/admin/users", params={"email": needle}, headers=admin.bearer)
        assert response.status_code == 200
        assert response.json()["total"] == 0, needle


async def test_admins_page_through_users_with_limit_and_offset(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    marker = f"page{uuid.uuid4().hex[:10]}"
    users = await _marked_users(client, marker, 5)

    seen: list[str] = []
    for offset in (0, 2, 4):
        response = await client.get(
            "/admin/users", params={"email": marker, "limit": 2, "offset": offset}, headers=admin.bearer
        )
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (5, 2, offset)
        seen += _emails(response)
    assert len(seen) == 5
    assert sorted(seen) == sorted(u.email for u in users)

    too_many = await client.get("/admin/users", params={"limit": 201}, headers=admin.bearer)
    assert too_many.status_code == 422


async def test_admins_filter_users_by_role_and_state(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    marker = f"role{uuid.uuid4().hex[:10]}"
    plain, other_admin, inactive = await _marked_users(client, marker, 3)
    await client.put(f"/admin/users/{other_admin.id}/roles", json={"roles": ["admin"]}, headers=admin.bearer)
    await client.post(f"/admin/users/{inactive.id}/deactivate", headers=admin.bearer)

    admins = await client.get("/admin/users", params={"email": marker, "role": "admin"}, headers=admin.bearer)
    assert _emails(admins) == [other_admin.email]
    inactive_ones = await client.get(
        "/admin/users", params={"email": marker, "is_active": "false"}, headers=admin.bearer
    )
    assert _emails(inactive_ones) == [inactive.email]
    assert plain.email not in _emails(admins) + _emails(inactive_ones)


async def test_admins_read_one_user(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    response = await client.get(f"/admin/users/{user.id}", headers=admin.bearer)
    assert response.status_code == 200
    assert response.json()["email"] == user.email
    assert response.json()["roles"] == ["user"]

    missing = await client.get(f"/admin/users/{uuid.uuid4()}", headers=admin.bearer)
    assert missing.status_code == 404
    assert missing.json()["error"] == "user_not_found"


# Activation


async def test_deactivation_ends_every_session_at_once(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    second = tokens_of(await password_grant(client, user.email))

    response = await client.post(f"/admin/users/{user.id}/deactivate", headers=admin.bearer)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    for tokens in (user.tokens, second):
        assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401
        assert (await refresh_grant(client, tokens.refresh)).status_code == 400
    assert (await password_grant(client, user.email)).status_code == 400

    [row] = await audit_rows(db_session, user.id, "admin.user_deactivated")
    assert row.actor_id == admin.id
    assert row.session_id is not None
    assert row.details == {"was_active": True, "sessions_ended": 2, "pending_links_ended": 1}


async def test_activation_lets_the_user_log_in_again(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    await client.post(f"/admin/users/{user.id}/deactivate", headers=admin.bearer)

    response = await client.post(f"/admin/users/{user.id}/activate", headers=admin.bearer)
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert (await password_grant(client, user.email)).status_code == 200
    # Sessions ended by the deactivation stay ended.
    assert (await refresh_grant(client, user.tokens.refresh)).status_code == 400

    [row] = await audit_rows(db_session, user.id, "admin.user_activated")
    assert (row.actor_id, row.user_id) == (admin.id, user.id)
    assert row.details == {"was_active": False}


async def test_an_admin_cannot_deactivate_themself(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    response = await client.post(f"/admin/users/{admin.id}/deactivate", headers=admin.bearer)
    assert response.status_code == 409
    assert response.json()["error"] == "cannot_deactivate_self"
    assert (await client.get("/admin/users", headers=admin.bearer)).status_code == 200
    assert await audit_rows(db_session, admin.id, "admin.user_deactivated") == []


async def test_unknown_users_are_404_for_every_change(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    nobody = uuid.uuid4()
    for method, path, body in [
        ("POST", f"/admin/users/{nobody}/activate", None),
        ("POST", f"/admin/users/{nobody}/deactivate", None),
        ("PUT", f"/admin/users/{nobody}/roles", {"roles": ["user"]}),
        ("DELETE", f"/admin/users/{nobody}", None),
        ("POST", f"/admin/users/{nobody}/sessions/revoke", None),
    ]:
        response = await client.request(method, path, json=body, headers=admin.bearer)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "user_not_found"
    assert await audit_rows(db_session, nobody) == []


# Roles


async def test_a_granted_role_appears_in_the_next_access_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    assert claims_of(user.tokens.access)["roles"] == ["user"]

    response = await client.put(
        f"/admin/users/{user.id}/roles", json={"roles": ["admin"]}, headers=admin.bearer
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["user", "admin"]  # `user` is always kept

    refreshed = tokens_of(await refresh_grant(client, user.tokens.refresh))
    assert claims_of(refreshed.access)["roles"] == ["user", "admin"]
    logged_in = tokens_of(await password_grant(client, user.email))
    assert claims_of(logged_in.access)["roles"] == ["user", "admin"]
    assert (await client.get("/admin/users", headers=refreshed.bearer)).status_code == 200

    [row] = await audit_rows(db_session, user.id, "admin.roles_changed")
    assert (row.actor_id, row.user_id) == (admin.id, user.id)
    assert row.details == {"before": ["user"], "after": ["user", "admin"]}


async def test_a_removed_role_leaves_the_next_access_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    other = await admin_account(client, db_session)
    response = await client.put(f"/admin/users/{other.id}/roles", json={"roles": []}, headers=admin.bearer)
    assert response.json()["roles"] == ["user"]
    refreshed = tokens_of(await refresh_grant(client, other.tokens.refresh))
    assert claims_of(refreshed.access)["roles"] == ["user"]


async def test_only_known_roles_are_accepted(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    unknown = await client.put(
        f"/admin/users/{user.id}/roles", json={"roles": ["user", "superuser"]}, headers=admin.bearer
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"] == "unknown_role"
    extra_field = await client.put(
        f"/admin/users/{user.id}/roles", json={"roles": ["user"], "is_active": False}, headers=admin.bearer
    )
    assert extra_field.status_code == 422
    assert extra_field.json()["error"] == "validation_error"
    assert (await db_session.get(User, user.id)).roles == ["user"]  # type: ignore[union-attr]
    assert await audit_rows(db_session, user.id, "admin.roles_changed") == []


async def test_an_admin_cannot_remove_their_own_admin_role(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    response = await client.put(
        f"/admin/users/{admin.id}/roles", json={"roles": ["user"]}, headers=admin.bearer
    )
    assert response.status_code == 409
    assert response.json()["error"] == "cannot_remove_own_admin_role"
    assert (await client.get("/admin/users", headers=admin.bearer)).status_code == 200


# Deletion


async def test_deleting_a_user_ends_their_sessions_and_keeps_their_audit_trail(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)

    response = await client.delete(f"/admin/users/{user.id}", headers=admin.bearer)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/admin/users/{user.id}", headers=admin.bearer)).status_code == 404
    assert (await client.get("/users/me", headers=user.bearer)).status_code == 401
    assert (await refresh_grant(client, user.tokens.refresh)).status_code == 400
    assert (await password_grant(client, user.email)).status_code == 400

    [row] = await audit_rows(db_session, user.id, "admin.user_deleted")
    assert (row.actor_id, row.user_id) == (admin.id, user.id)


async def test_an_admin_cannot_delete_themself(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    response = await client.delete(f"/admin/users/{admin.id}", headers=admin.bearer)
    assert response.status_code == 409
    assert response.json()["error"] == "cannot_delete_self"
    assert (await client.get("/users/me", headers=admin.bearer)).status_code == 200


async def test_the_email_of_a_deleted_user_can_register_again(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    email = unique_email()
    user = await user_account(client, email)
    await client.delete(f"/admin/users/{user.id}", headers=admin.bearer)
    again = await user_account(client, email)
    assert again.id != user.id


# Sessions


async def test_admins_end_all_of_a_users_sessions(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    second = tokens_of(await password_grant(client, user.email))

    response = await client.post(f"/admin/users/{user.id}/sessions/revoke", headers=admin.bearer)
    assert response.status_code == 200
    assert response.json() == {"sessions_ended": 2}
    for tokens in (user.tokens, second):
        assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401
        assert (await refresh_grant(client, tokens.refresh)).status_code == 400
    # The account itself stays usable.
    assert (await password_grant(client, user.email)).status_code == 200

    [row] = await audit_rows(db_session, user.id, "admin.sessions_ended")
    assert (row.actor_id, row.user_id) == (admin.id, user.id)
    assert row.details == {"sessions_ended": 2, "pending_links_ended": 1}  # the verification link


async def test_admin_audit_rows_record_the_admins_client(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    user = await user_account(client)
    await client.post(
        f"/admin/users/{user.id}/sessions/revoke", headers={**admin.bearer, "User-Agent": "admin-console/2.0"}
    )
    [row] = await audit_rows(db_session, user.id, "admin.sessions_ended")
    assert row.user_agent == "admin-console/2.0"
    assert row.ip_address == "127.0.0.1"
    assert row.occurred_at is not None
