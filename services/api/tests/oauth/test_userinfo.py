"""OpenID Connect UserInfo (OIDC Core §5.3): the bearer token in the header (GET, POST) or the form body
(POST, RFC 6750 §2.2); `sub` and the claims its scopes grant; RFC 6750 errors. Named after the
conformance suite's `oidcc-userinfo-get`, `-post-header` and `-post-body` modules."""

from datetime import timedelta

import httpx

from app.core.clock import ManualClock
from tests.admin.helpers import Account
from tests.auth.helpers import signed_up
from tests.oauth.conftest import new_app, payload, user_tokens

SCOPES = ["openid", "profile", "email"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_userinfo(response: httpx.Response, access_token: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    info = response.json()
    assert info["sub"] == payload(access_token)["sub"]
    assert info["email_verified"] is False
    assert "@" in info["email"]
    assert info["locale"] == "en"
    assert isinstance(info["updated_at"], int)


async def test_oidcc_userinfo_get(client: httpx.AsyncClient, admin: Account) -> None:
    token = (await user_tokens(client, await new_app(client, admin, scopes=SCOPES)))["access_token"]
    assert_userinfo(await client.get("/oauth2/userinfo", headers=bearer(token)), token)


async def test_oidcc_userinfo_post_header(client: httpx.AsyncClient, admin: Account) -> None:
    token = (await user_tokens(client, await new_app(client, admin, scopes=SCOPES)))["access_token"]
    assert_userinfo(await client.post("/oauth2/userinfo", headers=bearer(token)), token)


async def test_oidcc_userinfo_post_body(client: httpx.AsyncClient, admin: Account) -> None:
    token = (await user_tokens(client, await new_app(client, admin, scopes=SCOPES)))["access_token"]
    assert_userinfo(await client.post("/oauth2/userinfo", data={"access_token": token}), token)


async def test_oidc_userinfo_answers_only_the_claims_the_scopes_grant(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, scopes=SCOPES)
    token = (await user_tokens(client, app, scope="openid email"))["access_token"]
    info = (await client.get("/oauth2/userinfo", headers=bearer(token))).json()
    assert set(info) == {"sub", "email", "email_verified"}
    token = (await user_tokens(client, app, scope="openid"))["access_token"]
    assert set((await client.get("/oauth2/userinfo", headers=bearer(token))).json()) == {"sub"}


async def test_rfc6750_a_token_without_openid_is_403_insufficient_scope(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, scopes=["email"])
    token = (await user_tokens(client, app))["access_token"]
    response = await client.get("/oauth2/userinfo", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    _, built_in = await signed_up(client)  # the built-in client has no scopes
    assert (await client.get("/oauth2/userinfo", headers=bearer(built_in.access))).status_code == 403


async def test_rfc6750_an_invalid_expired_or_revoked_token_is_401_invalid_token(
    client: httpx.AsyncClient, admin: Account, clock: ManualClock
) -> None:
    app = await new_app(client, admin, scopes=SCOPES)
    body = await user_tokens(client, app)

    async def refused(headers: dict[str, str]) -> None:
        response = await client.get("/oauth2/userinfo", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

    await refused(bearer("not.a.token"))
    await refused(bearer(body["refresh_token"]))
    await client.post("/oauth2/revoke", data={"token": body["refresh_token"]}, headers=app.auth)
    await refused(bearer(body["access_token"]))
    live = (await user_tokens(client, app))["access_token"]
    clock.advance(timedelta(hours=1))
    await refused(bearer(live))


async def test_rfc6750_2_a_token_sent_two_ways_is_invalid_request(
    client: httpx.AsyncClient, admin: Account
) -> None:
    token = (await user_tokens(client, await new_app(client, admin, scopes=SCOPES)))["access_token"]
    response = await client.post("/oauth2/userinfo", data={"access_token": token}, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
