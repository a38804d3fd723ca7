"""RFC 7009 revocation per client: the client authenticates as at the token endpoint (none: the built-in
client), only its own tokens are revoked, and an access token ends its session too."""

import httpx
import pytest

from tests.admin.helpers import Account
from tests.auth.helpers import signed_up
from tests.oauth.conftest import new_app, user_tokens

PATHS = ["/oauth2/revoke", "/auth/revoke"]


async def _live(client: httpx.AsyncClient, access_token: str) -> bool:
    response = await client.get("/auth/sessions", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code == 200


@pytest.mark.parametrize("path", PATHS)
async def test_rfc7009_another_clients_token_is_not_revoked(
    client: httpx.AsyncClient, admin: Account, path: str
) -> None:
    owner = await new_app(client, admin)
    other = await new_app(client, admin)
    body = await user_tokens(client, owner)
    for token in (body["refresh_token"], body["access_token"]):
        response = await client.post(path, data={"token": token}, headers=other.auth)
        assert response.status_code == 200  # §2.2: nothing to tell the caller
        # Without credentials, the caller is the built-in client: not the owner either.
        assert (await client.post(path, data={"token": token})).status_code == 200
    assert await _live(client, body["access_token"])
    refreshed = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=owner.auth,
    )
    assert refreshed.status_code == 200, refreshed.text


@pytest.mark.parametrize("path", PATHS)
async def test_rfc7009_revoking_an_access_token_ends_its_session(
    client: httpx.AsyncClient, admin: Account, path: str
) -> None:
    app = await new_app(client, admin)
    body = await user_tokens(client, app)
    response = await client.post(
        path, data={"token": body["access_token"], "token_type_hint": "access_token"}, headers=app.auth
    )
    assert response.status_code == 200
    assert not await _live(client, body["access_token"])
    refused = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=app.auth,
    )
    assert refused.json()["error"] == "invalid_grant"


async def test_rfc7009_the_built_in_client_revokes_without_credentials_as_before(
    client: httpx.AsyncClient,
) -> None:
    _, tokens = await signed_up(client)
    assert (await client.post("/auth/revoke", data={"token": tokens.refresh})).status_code == 200
    assert not await _live(client, tokens.access)
    _, other = await signed_up(client)
    assert (await client.post("/oauth2/revoke", data={"token": other.access})).status_code == 200
    assert not await _live(client, other.access)


async def test_rfc7009_a_confidential_client_must_authenticate_to_revoke(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin)
    body = await user_tokens(client, app)
    unauthenticated = await client.post(
        "/oauth2/revoke", data={"token": body["refresh_token"], "client_id": app.client_id}
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"] == "invalid_client"
    assert await _live(client, body["access_token"])


@pytest.mark.parametrize("path", PATHS)
async def test_rfc7009_a_token_given_twice_is_invalid_request_and_revokes_nothing_rfc6749_3_2(
    client: httpx.AsyncClient, path: str
) -> None:
    """RFC 7009 §2.1 sends its parameters as RFC 6749 does: each at most once (§3.2)."""
    _, tokens = await signed_up(client)
    _, other = await signed_up(client)
    response = await client.post(path, data={"token": [tokens.refresh, other.refresh]})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert await _live(client, tokens.access)
    assert await _live(client, other.access)
