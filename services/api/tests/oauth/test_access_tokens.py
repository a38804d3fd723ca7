"""RFC 9068 access tokens (client_id, scope, the client's audience and lifetimes), the scope a grant gives
(RFC 6749 §3.3, §6), and the client_credentials grant (RFC 6749 §4.4)."""

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.auth.models import AuthSession
from app.core.clock import ManualClock
from app.core.config import Settings
from tests.admin.helpers import Account
from tests.auth.helpers import register, signed_up, unique_email
from tests.clients.helpers import password_grant_as, refresh_grant_as
from tests.oauth.conftest import new_app, payload, user_tokens


async def test_rfc9068_access_token_carries_client_id_scope_and_the_clients_audience(
    client: httpx.AsyncClient, admin: Account, clock: ManualClock
) -> None:
    app = await new_app(
        client,
        admin,
        scopes=["openid", "email", "notes:read"],
        access_token_audience="https://notes.example.org",
        access_token_ttl_seconds=120,
    )
    body = await user_tokens(client, app)
    claims = payload(body["access_token"])
    assert claims["client_id"] == app.client_id
    assert claims["aud"] == "https://notes.example.org"
    assert claims["scope"] == "openid email notes:read"  # nothing asked for: all the client may have
    assert claims["exp"] - claims["iat"] == 120 == body["expires_in"]
    assert {"iss", "sub", "jti", "iat", "exp", "auth_time", "amr"} <= claims.keys()
    assert "scope" not in body  # echoed only when asked for


async def test_rfc9068_the_built_in_client_keeps_the_service_audience(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, tokens = await signed_up(client)
    claims = payload(tokens.access)
    assert (claims["client_id"], claims["aud"]) == ("pyauth", settings.JWT_AUDIENCE)


async def test_rfc6749_3_3_a_requested_scope_narrows_and_an_unknown_one_is_invalid_scope(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, scopes=["openid", "email", "notes:read"])
    body = await user_tokens(client, app, scope="notes:read openid")
    assert payload(body["access_token"])["scope"] == "notes:read openid"
    assert body["scope"] == "notes:read openid"
    email = unique_email()
    await register(client, email)
    refused = await password_grant_as(client, email, headers=app.auth, scope="openid admin")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


async def test_rfc6749_6_a_refresh_keeps_the_scope_and_may_narrow_it_never_widen_it(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    app = await new_app(client, admin, scopes=["openid", "email", "notes:read"])
    body = await user_tokens(client, app, scope="openid notes:read")
    widened = await refresh_grant_as(client, body["refresh_token"], headers=app.auth, scope="openid email")
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"
    narrowed = await refresh_grant_as(client, body["refresh_token"], headers=app.auth, scope="notes:read")
    assert narrowed.status_code == 200, narrowed.text  # the refused widening left the token unspent
    assert payload(narrowed.json()["access_token"])["scope"] == "notes:read"
    again = await refresh_grant_as(client, narrowed.json()["refresh_token"], headers=app.auth)
    assert payload(again.json()["access_token"])["scope"] == "openid notes:read"  # the session's scope
    sid = payload(again.json()["access_token"])["sid"]
    stored = await db_session.get(AuthSession, sid)
    assert stored is not None and stored.scopes == ["openid", "notes:read"]


async def test_a_clients_refresh_token_lifetime_bounds_its_sessions(
    client: httpx.AsyncClient, admin: Account, clock: ManualClock
) -> None:
    app = await new_app(client, admin, refresh_token_ttl_seconds=600)
    body = await user_tokens(client, app)
    clock.advance(timedelta(seconds=601))
    expired = await refresh_grant_as(client, body["refresh_token"], headers=app.auth)
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"


async def test_rfc6749_4_4_client_credentials_for_a_confidential_client(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    app = await new_app(
        client,
        admin,
        grant_types=["client_credentials"],
        scopes=["openid", "notes:read", "notes:write"],
        access_token_audience="https://notes.example.org",
    )
    response = await client.post(
        "/auth/token", data={"grant_type": "client_credentials", "scope": "notes:read"}, headers=app.auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body  # RFC 6749 §4.4.3
    assert (body["token_type"], body["scope"]) == ("Bearer", "notes:read")
    assert response.headers["cache-control"] == "no-store"
    claims = payload(body["access_token"])
    assert (claims["sub"], claims["client_id"]) == (app.client_id, app.client_id)
    assert (claims["aud"], claims["scope"]) == ("https://notes.example.org", "notes:read")
    assert "sid" not in claims
    # Without a scope: the client's own, never the OpenID user scopes.
    default = await client.post("/auth/token", data={"grant_type": "client_credentials"}, headers=app.auth)
    assert payload(default.json()["access_token"])["scope"] == "notes:read notes:write"
    openid = await client.post(
        "/auth/token", data={"grant_type": "client_credentials", "scope": "openid"}, headers=app.auth
    )
    assert openid.json()["error"] == "invalid_scope"
    audited = await db_session.scalars(
        select(AuditEntry).where(
            AuditEntry.event == "client.token_issued", AuditEntry.details["client_id"].astext == app.client_id
        )
    )
    assert len(list(audited)) == 2


async def test_rfc6749_4_4_public_client_cannot_use_client_credentials(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, type="public", grant_types=["refresh_token"])
    response = await client.post(
        "/auth/token", data={"grant_type": "client_credentials", "client_id": app.client_id}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    built_in = await client.post("/auth/token", data={"grant_type": "client_credentials"})
    assert built_in.json()["error"] == "unauthorized_client"


async def test_rfc6749_4_4_a_confidential_client_needs_the_grant_registered(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin)
    response = await client.post("/auth/token", data={"grant_type": "client_credentials"}, headers=app.auth)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
