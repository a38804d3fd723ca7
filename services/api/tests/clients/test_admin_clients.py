"""`/admin/clients`: the client registry's admin API. Admin-only as `/admin/users` is, no-store, every
change audited, and a secret shown exactly once."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.clients.models import ClientSecret, OAuthClient
from app.core.clock import ManualClock
from app.core.opaque_tokens import digest
from tests.admin.helpers import admin_account, user_account
from tests.auth.helpers import password_grant, register, tokens_of, unique_email
from tests.clients.helpers import basic, password_grant_as, register_client


async def _client_events(db_session: AsyncSession, client_id: str) -> list[AuditEntry]:
    rows = await db_session.scalars(
        select(AuditEntry)
        .where(AuditEntry.details["client_id"].astext == client_id, AuditEntry.event.startswith("admin."))
        .order_by(AuditEntry.id)
    )
    return list(rows)


async def test_creating_a_confidential_client_shows_its_secret_once_and_stores_only_a_digest(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(
        client,
        admin,
        name="Billing",
        redirect_uris=["https://billing.example.com/cb"],
        scopes=["openid", "email"],
    )
    secret = created["client_secret"]
    assert len(secret) >= 43  # 256 random bits, URL-safe base64
    assert created["type"] == "confidential"
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    assert created["id_token_signed_response_alg"] == "ES256"
    assert created["token_endpoint_auth_methods"] == ["client_secret_basic", "client_secret_post"]
    assert len(created["secrets"]) == 1 and created["secrets"][0]["expires_at"] is None

    stored = list(
        await db_session.scalars(
            select(ClientSecret.secret_hash).where(ClientSecret.client_id == created["client_id"])
        )
    )
    assert stored == [digest(secret)]

    read = await client.get(f"/admin/clients/{created['client_id']}", headers=admin.bearer)
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert secret not in read.text
    assert read.headers["cache-control"] == "no-store"


async def test_a_public_client_has_no_secret(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, type="public", redirect_uris=["http://127.0.0.1:8080/cb"])
    assert created["client_secret"] is None
    assert created["secrets"] == []
    assert created["token_endpoint_auth_methods"] == ["none"]
    rotated = await client.post(f"/admin/clients/{created['client_id']}/secret", headers=admin.bearer)
    assert rotated.status_code == 409
    assert rotated.json()["error"] == "public_client_has_no_secret"


async def test_client_ids_are_random_and_url_safe(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    ids = {(await register_client(client, admin, type="public"))["client_id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(len(i) >= 22 and all(c.isalnum() or c in "-_" for c in i) for i in ids)


async def test_list_get_update_and_delete(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, name="Old name")
    client_id = created["client_id"]

    listed = await client.get("/admin/clients", headers=admin.bearer)
    assert listed.status_code == 200
    ids = [item["client_id"] for item in listed.json()["items"]]
    assert client_id in ids and "pyauth" in ids
    assert listed.json()["total"] >= 2

    patched = await client.patch(
        f"/admin/clients/{client_id}",
        json={
            "name": "New name",
            "access_token_audience": "billing-api",
            "id_token_signed_response_alg": "RS256",
        },
        headers=admin.bearer,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["access_token_audience"], body["id_token_signed_response_alg"]) == (
        "New name",
        "billing-api",
        "RS256",
    )
    assert body["redirect_uris"] == created["redirect_uris"]  # not sent: unchanged

    assert (
        await client.patch(f"/admin/clients/{client_id}", json={"type": "public"}, headers=admin.bearer)
    ).status_code == 422

    deleted = await client.delete(f"/admin/clients/{client_id}", headers=admin.bearer)
    assert deleted.status_code == 204
    missing = await client.get(f"/admin/clients/{client_id}", headers=admin.bearer)
    assert missing.status_code == 404
    assert missing.json()["error"] == "client_not_found"

    events = [row.event for row in await _client_events(db_session, client_id)]
    assert events == ["admin.client_created", "admin.client_updated", "admin.client_deleted"]
    rows = await _client_events(db_session, client_id)
    assert all(row.actor_id == admin.id for row in rows)
    assert rows[1].details is not None and rows[1].details["changed"] == [
        "access_token_audience",
        "id_token_signed_response_alg",
        "name",
    ]
    assert created["client_secret"] not in str([row.details for row in rows])


async def test_the_built_in_client_cannot_be_deleted(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    response = await client.delete("/admin/clients/pyauth", headers=admin.bearer)
    assert response.status_code == 409
    assert response.json()["error"] == "builtin_client_protected"
    builtin = (await client.get("/admin/clients/pyauth", headers=admin.bearer)).json()
    assert builtin["built_in"] is True
    assert builtin["type"] == "public"
    assert builtin["grant_types"] == ["password", "refresh_token"]


async def test_client_credentials_is_refused_for_a_public_client(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    body = {"name": "CLI tool", "type": "public", "grant_types": ["client_credentials"]}
    response = await client.post("/admin/clients", json=body, headers=admin.bearer)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_client_metadata"


async def test_unknown_fields_and_bad_scopes_are_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    unknown = await client.post(
        "/admin/clients", json={"name": "x", "type": "public", "client_id": "mine"}, headers=admin.bearer
    )
    assert unknown.status_code == 422
    bad_scope = await client.post(
        "/admin/clients", json={"name": "x", "type": "public", "scopes": ['a"b']}, headers=admin.bearer
    )
    assert bad_scope.status_code == 422
    assert bad_scope.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/clients"),
        ("POST", "/admin/clients"),
        ("GET", "/admin/clients/pyauth"),
        ("PATCH", "/admin/clients/pyauth"),
        ("DELETE", "/admin/clients/pyauth"),
        ("POST", "/admin/clients/pyauth/secret"),
        ("DELETE", "/admin/clients/pyauth/secret/previous"),
    ],
)
async def test_the_client_registry_is_for_admins_only(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    user = await user_account(client)
    body = {"json": {"name": "x", "type": "public"}} if method in ("POST", "PATCH") else {}
    anonymous = await client.request(method, path, **body)  # type: ignore[arg-type]
    assert anonymous.status_code == 401
    refused = await client.request(method, path, headers=user.bearer, **body)  # type: ignore[arg-type]
    assert refused.status_code == 403
    assert refused.json()["error"] == "admin_required"


async def test_secret_rotation_keeps_two_secrets_live_until_the_previous_one_expires(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, grant_types=["password", "refresh_token"])
    client_id, old = created["client_id"], created["client_secret"]
    email = unique_email()
    await register(client, email)

    rotated = await client.post(f"/admin/clients/{client_id}/secret", headers=admin.bearer)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new = rotated.json()["client_secret"]
    assert new != old
    live = rotated.json()["secrets"]
    assert len(live) == 2
    assert live[0]["expires_at"] is not None and live[1]["expires_at"] is None

    for secret in (old, new):
        assert (await password_grant_as(client, email, headers=basic(client_id, secret))).status_code == 200

    clock.advance(timedelta(days=1, seconds=1))  # CLIENT_SECRET_ROTATION_OVERLAP_SECONDS' default
    assert (await password_grant_as(client, email, headers=basic(client_id, old))).status_code == 401
    assert (await password_grant_as(client, email, headers=basic(client_id, new))).status_code == 200

    admin_again = tokens_of(await password_grant(client, admin.email))  # the first access token expired
    again = await client.post(f"/admin/clients/{client_id}/secret", headers=admin_again.bearer)
    third = again.json()["client_secret"]
    assert len(again.json()["secrets"]) == 2  # never more than two live
    assert (await password_grant_as(client, email, headers=basic(client_id, new))).status_code == 200
    events = [row.event for row in await _client_events(db_session, client_id)]
    assert events.count("admin.client_secret_rotated") == 2
    assert third not in str([row.details for row in await _client_events(db_session, client_id)])


async def test_the_previous_secret_can_be_ended_before_its_overlap_runs_out(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, grant_types=["password"])
    client_id, old = created["client_id"], created["client_secret"]
    email = unique_email()
    await register(client, email)
    none_yet = await client.delete(f"/admin/clients/{client_id}/secret/previous", headers=admin.bearer)
    assert none_yet.status_code == 409  # the client exists: a state conflict, not a missing resource
    assert none_yet.json()["error"] == "no_previous_secret"

    new = (await client.post(f"/admin/clients/{client_id}/secret", headers=admin.bearer)).json()[
        "client_secret"
    ]
    dropped = await client.delete(f"/admin/clients/{client_id}/secret/previous", headers=admin.bearer)
    assert dropped.status_code == 200
    assert len(dropped.json()["secrets"]) == 1
    assert (await password_grant_as(client, email, headers=basic(client_id, old))).status_code == 401
    assert (await password_grant_as(client, email, headers=basic(client_id, new))).status_code == 200
    events = [row.event for row in await _client_events(db_session, client_id)]
    assert events[-1] == "admin.client_secret_revoked"


async def test_deleting_a_client_ends_its_sessions(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, grant_types=["password", "refresh_token"])
    client_id, secret = created["client_id"], created["client_secret"]
    email = unique_email()
    await register(client, email)
    tokens = (await password_grant_as(client, email, headers=basic(client_id, secret))).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/users/me", headers=bearer)).status_code == 200
    assert (await client.delete(f"/admin/clients/{client_id}", headers=admin.bearer)).status_code == 204
    assert (await client.get("/users/me", headers=bearer)).status_code == 401
    assert await db_session.get(OAuthClient, client_id) is None


async def test_the_document_lists_the_client_codes_and_operation_names(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    token = document["paths"]["/auth/token"]["post"]["responses"]
    assert token["401"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"] == [
        "invalid_client"
    ]
    assert (
        "unauthorized_client"
        in token["400"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
    )
    names = {
        (path, method): operation["operationId"]
        for path, item in document["paths"].items()
        if path.startswith("/admin/clients")
        for method, operation in item.items()
    }
    assert names == {
        ("/admin/clients", "post"): "admin_create_client",
        ("/admin/clients", "get"): "admin_list_clients",
        ("/admin/clients/{client_id}", "get"): "admin_get_client",
        ("/admin/clients/{client_id}", "patch"): "admin_update_client",
        ("/admin/clients/{client_id}", "delete"): "admin_delete_client",
        ("/admin/clients/{client_id}/secret", "post"): "admin_rotate_client_secret",
        ("/admin/clients/{client_id}/secret/previous", "delete"): "admin_revoke_previous_client_secret",
    }
    rotate = document["paths"]["/admin/clients/{client_id}/secret"]["post"]["responses"]
    assert rotate["409"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"] == [
        "public_client_has_no_secret"
    ]


async def test_boolean_fields_take_json_booleans_only(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """The schema says boolean: 0, 1 or "true" is a 422 (schemathesis' ST201), not a client created."""
    admin = await admin_account(client, db_session)
    for value in (0, 1, "true", "no"):
        body = {"name": "x", "type": "public", "first_party": value}
        created = await client.post("/admin/clients", json=body, headers=admin.bearer)
        assert created.status_code == 422, (value, created.text)
    created = await client.post(
        "/admin/clients", json={"name": "x", "type": "public", "first_party": True}, headers=admin.bearer
    )
    assert created.status_code == 201, created.text
    client_id = created.json()["client_id"]
    for field in ("first_party", "disabled"):
        patched = await client.patch(f"/admin/clients/{client_id}", json={field: 1}, headers=admin.bearer)
        assert patched.status_code == 422, (field, patched.text)
