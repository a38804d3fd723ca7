"""Client authentication at the token endpoint (RFC 6749 §2.3, §5.2; OAuth 2.1 §2.4): HTTP Basic,
the form, or a public client's id alone; requests without client credentials are the built-in client's.
The password grant is a per-client permission (RFC 9700 §2.4), and refresh tokens are bound to their
client."""

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.auth.models import AuthSession
from app.main import create_app
from tests.admin.helpers import Account, admin_account
from tests.auth.helpers import PASSWORD, password_grant, refresh_grant, register, tokens_of, unique_email
from tests.clients.helpers import basic, password_grant_as, refresh_grant_as, register_client
from tests.conftest import make_settings, started_in_test_transaction

BOTH_GRANTS = ["password", "refresh_token"]


async def _user(client: httpx.AsyncClient) -> str:
    email = unique_email()
    assert (await register(client, email)).status_code == 201
    return email


async def _session_client(db_session: AsyncSession, access_token: str, client: httpx.AsyncClient) -> str:
    me = await client.get("/auth/sessions", headers={"Authorization": f"Bearer {access_token}"})
    [current] = [s for s in me.json() if s["current"]]
    auth_session = await db_session.get(AuthSession, current["id"])
    assert auth_session is not None
    return auth_session.client_id


async def _failures(db_session: AsyncSession, client_id: str) -> list[AuditEntry]:
    rows = await db_session.scalars(
        select(AuditEntry).where(
            AuditEntry.event == "client.authentication_failed",
            AuditEntry.details["client_id"].astext == client_id,
        )
    )
    return list(rows)


@pytest.fixture(autouse=True, params=["rate limits off", "rate limits on"])
def rate_limits(request: pytest.FixtureRequest, app: FastAPI) -> None:
    """Every case twice: with rate limits off the grant reads the client itself; with them on, the
    limit's hit reads it in its own round trip (`client_auth.client_read`) and the grant authenticates
    what that read found."""
    if request.param == "rate limits on":
        app.state.settings = app.state.settings.model_copy(
            update={"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_TOKEN": 100_000}
        )


@pytest.fixture
async def admin(client: httpx.AsyncClient, db_session: AsyncSession) -> Account:
    return await admin_account(client, db_session)


async def test_rfc6749_2_3_1_client_secret_basic_authenticates_a_confidential_client(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    email = await _user(client)
    response = await password_grant_as(
        client, email, headers=basic(registered["client_id"], registered["client_secret"])
    )
    assert response.status_code == 200, response.text
    assert (
        await _session_client(db_session, response.json()["access_token"], client) == registered["client_id"]
    )


async def test_rfc6749_2_3_1_basic_credentials_are_form_urlencoded_before_base64(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    every_byte_escaped = "".join(f"%{byte:02X}" for byte in registered["client_secret"].encode())
    raw = f"{registered['client_id']}:{every_byte_escaped}".encode()
    headers = {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}
    assert (await password_grant_as(client, await _user(client), headers=headers)).status_code == 200


async def test_rfc6749_2_3_1_client_secret_post_authenticates_a_confidential_client(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    response = await password_grant_as(
        client,
        await _user(client),
        client_id=registered["client_id"],
        client_secret=registered["client_secret"],
    )
    assert response.status_code == 200, response.text
    refreshed = await refresh_grant_as(
        client,
        response.json()["refresh_token"],
        client_id=registered["client_id"],
        client_secret=registered["client_secret"],
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_a_public_client_authenticates_with_its_client_id_only(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    registered = await register_client(client, admin, type="public", grant_types=BOTH_GRANTS)
    response = await password_grant_as(client, await _user(client), client_id=registered["client_id"])
    assert response.status_code == 200, response.text
    assert (
        await _session_client(db_session, response.json()["access_token"], client) == registered["client_id"]
    )
    refreshed = await refresh_grant_as(
        client, response.json()["refresh_token"], client_id=registered["client_id"]
    )
    assert refreshed.status_code == 200


async def test_requests_without_client_credentials_are_made_for_the_built_in_client(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email = await _user(client)
    tokens = tokens_of(await password_grant(client, email))
    assert await _session_client(db_session, tokens.access, client) == "pyauth"
    assert (await refresh_grant(client, tokens.refresh)).status_code == 200
    named = await password_grant_as(client, email, client_id="pyauth")
    assert named.status_code == 200


async def test_rfc6749_5_2_wrong_client_secret_is_401_invalid_client_with_www_authenticate(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    response = await password_grant_as(
        client, await _user(client), headers=basic(registered["client_id"], registered["client_secret"] + "x")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["cache-control"] == "no-store"
    [failure] = await _failures(db_session, registered["client_id"])
    assert (failure.reason, failure.details) == (
        "wrong_secret",
        {"client_id": registered["client_id"], "method": "client_secret_basic"},
    )


async def test_rfc6749_5_2_wrong_client_secret_in_the_form_is_401_invalid_client(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    response = await password_grant_as(
        client, await _user(client), client_id=registered["client_id"], client_secret="not-the-secret"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"client_id": "no-such-client"}, id="unknown_client_id"),
        pytest.param({"client_id": "no-such-client", "client_secret": "x"}, id="unknown_client_post"),
        pytest.param({"client_id": "CONFIDENTIAL"}, id="confidential_without_secret"),
        pytest.param({"client_id": "PUBLIC", "client_secret": "anything"}, id="public_with_a_secret"),
    ],
)
async def test_rfc6749_5_2_a_client_that_does_not_prove_itself_is_invalid_client(
    client: httpx.AsyncClient, admin: Account, credentials: dict[str, str]
) -> None:
    ids = {
        "CONFIDENTIAL": (await register_client(client, admin, grant_types=BOTH_GRANTS))["client_id"],
        "PUBLIC": (await register_client(client, admin, type="public", grant_types=BOTH_GRANTS))["client_id"],
    }
    form = {key: ids.get(value, value) for key, value in credentials.items()}
    response = await password_grant_as(client, await _user(client), **form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic "])
async def test_rfc6749_5_2_malformed_basic_credentials_are_401_invalid_client(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await password_grant_as(client, await _user(client), headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_rfc6749_2_3_a_request_may_not_use_two_authentication_methods(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    response = await password_grant_as(
        client,
        await _user(client),
        headers=basic(registered["client_id"], registered["client_secret"]),
        client_secret=registered["client_secret"],
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_disabled_client_gets_invalid_client_even_for_its_refresh_tokens(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    credentials = basic(registered["client_id"], registered["client_secret"])
    email = await _user(client)
    tokens = tokens_of(await password_grant_as(client, email, headers=credentials))
    disabled = await client.patch(
        f"/admin/clients/{registered['client_id']}", json={"disabled": True}, headers=admin.bearer
    )
    assert disabled.json()["disabled"] is True
    assert (await refresh_grant_as(client, tokens.refresh, headers=credentials)).status_code == 401
    assert (await password_grant_as(client, email, headers=credentials)).status_code == 401


async def test_rfc6749_5_2_a_client_using_a_grant_it_is_not_allowed_is_unauthorized_client(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, type="public", grant_types=["password"])
    email = await _user(client)
    tokens = tokens_of(await password_grant_as(client, email, client_id=registered["client_id"]))
    response = await refresh_grant_as(client, tokens.refresh, client_id=registered["client_id"])
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    # Refused before anything was spent (with limits on, the rotation sent with the hit did not run):
    # once the client may refresh, the same token works.
    allowed = await client.patch(
        f"/admin/clients/{registered['client_id']}", json={"grant_types": BOTH_GRANTS}, headers=admin.bearer
    )
    assert allowed.status_code == 200
    again = await refresh_grant_as(client, tokens.refresh, client_id=registered["client_id"])
    assert again.status_code == 200


async def test_a_confidential_clients_refresh_without_its_secret_spends_nothing(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """A confidential client's id with no secret: 401 `invalid_client` (RFC 6749 §2.3.1). With limits on
    such a request looks like a public client's, so its rotation is sent with the hit: it must not run for
    a confidential client. The token still works with the secret."""
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    credentials = basic(registered["client_id"], registered["client_secret"])
    tokens = tokens_of(await password_grant_as(client, await _user(client), headers=credentials))
    refused = await refresh_grant_as(client, tokens.refresh, client_id=registered["client_id"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert (await refresh_grant_as(client, tokens.refresh, headers=credentials)).status_code == 200


async def test_a_disabled_public_client_refreshes_nothing_until_it_is_enabled_again(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """A public client sends no secret, so with limits on its refresh's rotation goes with the hit: for a
    disabled client it must not run. 401 `invalid_client`, and the token still works once it is enabled."""
    registered = await register_client(client, admin, type="public", grant_types=BOTH_GRANTS)
    client_id = registered["client_id"]
    tokens = tokens_of(await password_grant_as(client, await _user(client), client_id=client_id))
    path = f"/admin/clients/{client_id}"
    assert (await client.patch(path, json={"disabled": True}, headers=admin.bearer)).status_code == 200
    refused = await refresh_grant_as(client, tokens.refresh, client_id=client_id)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert (await client.patch(path, json={"disabled": False}, headers=admin.bearer)).status_code == 200
    assert (await refresh_grant_as(client, tokens.refresh, client_id=client_id)).status_code == 200


async def test_rfc9700_password_grant_is_not_allowed_for_new_clients(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin)  # the default grants
    assert "password" not in registered["grant_types"]
    response = await password_grant_as(
        client, await _user(client), headers=basic(registered["client_id"], registered["client_secret"])
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_taking_the_password_grant_from_the_built_in_client_refuses_credential_less_logins(
    client: httpx.AsyncClient, admin: Account
) -> None:
    email = await _user(client)
    tokens = tokens_of(await password_grant(client, email))
    changed = await client.patch(
        "/admin/clients/pyauth", json={"grant_types": ["refresh_token"]}, headers=admin.bearer
    )
    assert changed.status_code == 200
    refused = await password_grant(client, email)
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert (await refresh_grant(client, tokens.refresh)).status_code == 200


async def test_refresh_token_presented_by_another_client_is_invalid_grant(
    client: httpx.AsyncClient, admin: Account, db_session: AsyncSession
) -> None:
    other = await register_client(client, admin, grant_types=BOTH_GRANTS)
    other_credentials = basic(other["client_id"], other["client_secret"])
    email = await _user(client)
    builtin_tokens = tokens_of(await password_grant(client, email))

    stolen = await refresh_grant_as(client, builtin_tokens.refresh, headers=other_credentials)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    [refused] = await db_session.scalars(
        select(AuditEntry).where(AuditEntry.event == "refresh.failed", AuditEntry.reason == "wrong_client")
    )
    assert refused.details == {"client_id": other["client_id"]}
    # Left unspent: its own client still refreshes with it, and no reuse is detected.
    assert (await refresh_grant(client, builtin_tokens.refresh)).status_code == 200

    other_tokens = tokens_of(await password_grant_as(client, email, headers=other_credentials))
    assert (await refresh_grant(client, other_tokens.refresh)).json()["error"] == "invalid_grant"
    assert (
        await refresh_grant_as(client, other_tokens.refresh, headers=other_credentials)
    ).status_code == 200


async def test_authlib_authenticates_a_confidential_client_with_basic_and_with_the_form(
    app: FastAPI, client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, grant_types=BOTH_GRANTS)
    email = await _user(client)
    token_url = "http://testserver/auth/token"
    for method in ("client_secret_basic", "client_secret_post"):
        async with AsyncOAuth2Client(
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
            token_endpoint=token_url,
            token_endpoint_auth_method=method,
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
        ) as oauth:
            token = await oauth.fetch_token(token_url, username=email, password=PASSWORD)
            refreshed = await oauth.refresh_token(token_url, refresh_token=token["refresh_token"])
            assert refreshed["refresh_token"] != token["refresh_token"]
            assert (await oauth.get("/users/me")).status_code == 200


@pytest.fixture
async def no_password_client(db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(PASSWORD_GRANT_ENABLED=False)
    async with started_in_test_transaction(create_app(settings), db_session) as application:
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_rfc6749_5_2_password_grant_turned_off_is_unsupported_grant_type(
    no_password_client: httpx.AsyncClient,
) -> None:
    email = await _user(no_password_client)
    response = await password_grant(no_password_client, email)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    metadata: dict[str, Any] = (await no_password_client.get("/.well-known/openid-configuration")).json()
    assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]


async def test_rfc9700_2_4_production_serves_no_password_grant_unless_turned_on(
    db_session: AsyncSession,
) -> None:
    """ "The resource owner password credentials grant MUST NOT be used." With the hosted sign-in and the
    code flow in place, production leaves it off unless PASSWORD_GRANT_ENABLED=true says otherwise;
    development and the tests keep it (the built-in client, Swagger UI, `make bench`)."""
    # Production's own checks (https, secrets from files) are tested apart; here only the default moves.
    production = make_settings().model_copy(update={"ENVIRONMENT": "production"})
    assert production.password_grant_enabled is False
    assert production.model_copy(update={"PASSWORD_GRANT_ENABLED": True}).password_grant_enabled is True
    assert make_settings().password_grant_enabled is True
    async with started_in_test_transaction(create_app(production), db_session) as application:
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            email = await _user(http)
            response = await password_grant(http, email)
            assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")
            metadata = (await http.get("/.well-known/openid-configuration")).json()
            assert "password" not in metadata["grant_types_supported"]
            assert "authorization_code" in metadata["grant_types_supported"]


async def test_swagger_ui_s_empty_basic_credentials_are_the_built_in_client(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Swagger UI's Authorize sends `Basic base64(":")` when its client fields are left empty."""
    headers = {"Authorization": "Basic " + base64.b64encode(b":").decode()}
    response = await password_grant_as(client, await _user(client), headers=headers)
    assert response.status_code == 200, response.text
    assert await _session_client(db_session, response.json()["access_token"], client) == "pyauth"


async def test_a_public_client_may_send_its_id_in_basic_with_an_empty_secret(
    client: httpx.AsyncClient, admin: Account
) -> None:
    registered = await register_client(client, admin, type="public", grant_types=BOTH_GRANTS)
    headers = {"Authorization": "Basic " + base64.b64encode(f"{registered['client_id']}:".encode()).decode()}
    assert (await password_grant_as(client, await _user(client), headers=headers)).status_code == 200
