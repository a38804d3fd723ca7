"""Logout, logout-all, listing and revoking sessions, and password change ending other sessions."""

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.models import AuditEntry
from app.auth.models import AuthSession, RefreshToken
from app.clients.models import BUILTIN_CLIENT_ID
from app.core.clock import ManualClock
from app.core.opaque_tokens import digest
from tests.auth.helpers import PASSWORD, password_grant, refresh_grant, signed_up, tokens_of
from tests.factories import TEST_IP_ADDRESS, TEST_USER_AGENT
from tests.statements import statements_on


async def test_rfc6749_a_login_starts_its_session_first_refresh_token_and_audit_row_in_one_statement(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock, connection: AsyncConnection
) -> None:
    """A password login writes its session, the session's first refresh token and its `login.succeeded`
    row in one statement, which also clears the account's failure count and replaces the device token:
    the session created and last used at the login, live, of the built-in client, with the client's
    address, User-Agent and `amr`; the refresh token unspent; the audit row with the address, the
    User-Agent and, from a known device, `known_device`."""
    email, _ = await signed_up(client)  # the client keeps the device cookie of this first login
    clock.advance(timedelta(seconds=5))
    driver = (await connection.get_raw_connection()).driver_connection
    tables = ("auth_sessions", "refresh_tokens", "audit_events", "login_throttles", "login_devices")
    with statements_on(*tables, driver=driver) as statements:
        tokens = tokens_of(await password_grant(client, email))
    # Before it, the reservation's read and count of the device (`test_limits`).
    writes = [statement for statement in statements if "DELETE" in statement or "INSERT" in statement]
    assert len(writes) == 1, statements
    assert writes[0].startswith("WITH cleared_throttles AS ( DELETE FROM login_throttles"), writes
    assert "added_device AS ( INSERT INTO login_devices" in writes[0], writes
    assert "started AS ( INSERT INTO auth_sessions" in writes[0], writes

    stored = await db_session.get(RefreshToken, digest(tokens.refresh))
    assert stored is not None and stored.used_at is None and stored.created_at == clock.now()
    auth_session = await db_session.get(AuthSession, stored.session_id)
    assert auth_session is not None
    assert (auth_session.created_at, auth_session.last_used_at) == (clock.now(), clock.now())
    assert auth_session.expires_at > clock.now() + timedelta(days=1)
    assert auth_session.revoked_at is None and auth_session.client_id == BUILTIN_CLIENT_ID
    assert (auth_session.ip_address, auth_session.user_agent) == (TEST_IP_ADDRESS, TEST_USER_AGENT)
    assert auth_session.amr == ["pwd"]
    rows = (
        await db_session.scalars(
            select(AuditEntry).where(
                AuditEntry.session_id == auth_session.id, AuditEntry.event == "login.succeeded"
            )
        )
    ).all()
    assert [(r.user_id, r.occurred_at, r.ip_address, r.user_agent, r.details) for r in rows] == [
        (auth_session.user_id, clock.now(), TEST_IP_ADDRESS, TEST_USER_AGENT, {"known_device": True})
    ]


async def test_logout_ends_the_current_session_at_once(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    assert (await client.post("/auth/logout", headers=tokens.bearer)).status_code == 204
    assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401
    assert (await refresh_grant(client, tokens.refresh)).status_code == 400


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    email, first = await signed_up(client)
    second = tokens_of(await password_grant(client, email))
    assert (await client.post("/auth/logout-all", headers=second.bearer)).status_code == 204
    for tokens in (first, second):
        assert (await client.get("/users/me", headers=tokens.bearer)).status_code == 401
        assert (await refresh_grant(client, tokens.refresh)).status_code == 400


async def test_sessions_are_listed_and_one_can_be_revoked(client: httpx.AsyncClient) -> None:
    email, first = await signed_up(client)
    second = tokens_of(
        await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": email, "password": PASSWORD},
            headers={"User-Agent": "second-device/1.0"},
        )
    )
    listed = await client.get("/auth/sessions", headers=first.bearer)
    assert listed.status_code == 200
    sessions = listed.json()
    assert len(sessions) == 2
    assert sum(s["current"] for s in sessions) == 1
    other = next(s for s in sessions if not s["current"])
    assert other["user_agent"] == "second-device/1.0"
    assert {"id", "created_at", "last_used_at", "ip_address"} <= set(other)

    assert (await client.delete(f"/auth/sessions/{other['id']}", headers=first.bearer)).status_code == 204
    assert (await client.get("/users/me", headers=second.bearer)).status_code == 401
    assert (await client.get("/users/me", headers=first.bearer)).status_code == 200
    assert len((await client.get("/auth/sessions", headers=first.bearer)).json()) == 1


async def test_another_users_session_cannot_be_revoked(client: httpx.AsyncClient) -> None:
    _, alice = await signed_up(client)
    _, bob = await signed_up(client)
    bob_session = (await client.get("/auth/sessions", headers=bob.bearer)).json()[0]["id"]
    response = await client.delete(f"/auth/sessions/{bob_session}", headers=alice.bearer)
    assert response.status_code == 404
    assert response.json()["error"] == "session_not_found"
    assert (await client.get("/users/me", headers=bob.bearer)).status_code == 200


async def test_password_change_requires_the_current_password(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    response = await client.post(
        "/users/me/password",
        json={"current_password": "not-my-password-at-all", "new_password": "a-brand-new-passphrase-9"},
        headers=tokens.bearer,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_current_password"


async def test_password_change_ends_other_sessions_and_keeps_this_one(client: httpx.AsyncClient) -> None:
    email, this = await signed_up(client)
    other = tokens_of(await password_grant(client, email))
    new_password = "a-brand-new-passphrase-9"
    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=this.bearer,
    )
    assert response.status_code == 204
    assert (await client.get("/users/me", headers=this.bearer)).status_code == 200
    assert (await client.get("/users/me", headers=other.bearer)).status_code == 401
    assert (await password_grant(client, email)).status_code == 400
    assert (await password_grant(client, email, new_password)).status_code == 200


async def test_the_new_password_must_pass_the_policy(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=tokens.bearer,
    )
    assert response.status_code == 422
    assert response.json()["error"] == "password_too_short"


async def test_profile_update_accepts_only_user_fields(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    updated = await client.patch("/users/me", json={"display_name": "Alice"}, headers=tokens.bearer)
    assert updated.status_code == 200
    assert updated.json()["display_name"] == "Alice"
    refused = await client.patch("/users/me", json={"is_verified": True}, headers=tokens.bearer)
    assert refused.status_code == 422
    assert (await client.get("/users/me", headers=tokens.bearer)).json()["is_verified"] is False
