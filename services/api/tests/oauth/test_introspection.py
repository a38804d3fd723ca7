"""RFC 7662 introspection: for authenticated confidential clients; `active` only for a valid, unexpired
token of a live session that the caller may see (its own, or one meant for its registered audience)."""

from datetime import timedelta

import httpx

from app.core.clock import ManualClock
from tests.admin.helpers import Account
from tests.auth.helpers import signed_up
from tests.oauth.conftest import App, new_app, payload, user_tokens

AUDIENCE = "https://notes.example.org"


async def introspect(client: httpx.AsyncClient, caller: App, token: str, **form: str) -> httpx.Response:
    return await client.post("/oauth2/introspect", data={"token": token, **form}, headers=caller.auth)


async def test_rfc7662_an_active_access_token_answers_its_metadata(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, scopes=["openid", "notes:read"])
    body = await user_tokens(client, app)
    response = await introspect(client, app, body["access_token"], token_type_hint="access_token")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer, claims = response.json(), payload(body["access_token"])
    assert answer["active"] is True
    assert answer["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti"):
        assert answer[name] == claims[name], name


async def test_rfc7662_an_active_refresh_token_answers_its_metadata(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, scopes=["openid", "notes:read"])
    body = await user_tokens(client, app)
    answer = (await introspect(client, app, body["refresh_token"])).json()
    assert answer["active"] is True
    assert (answer["token_type"], answer["client_id"]) == ("refresh_token", app.client_id)
    assert (answer["scope"], answer["sub"]) == ("openid notes:read", payload(body["access_token"])["sub"])
    assert answer["exp"] > answer["iat"]


async def test_rfc7662_revoked_token_is_inactive(client: httpx.AsyncClient, admin: Account) -> None:
    app = await new_app(client, admin)
    body = await user_tokens(client, app)
    revoked = await client.post("/oauth2/revoke", data={"token": body["refresh_token"]}, headers=app.auth)
    assert revoked.status_code == 200
    for token in (body["access_token"], body["refresh_token"]):
        assert (await introspect(client, app, token)).json() == {"active": False}


async def test_rfc7662_expired_spent_and_malformed_tokens_are_inactive(
    client: httpx.AsyncClient, admin: Account, clock: ManualClock
) -> None:
    app = await new_app(client, admin)
    body = await user_tokens(client, app)
    rotated = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=app.auth,
    )
    assert rotated.status_code == 200
    assert (await introspect(client, app, body["refresh_token"])).json() == {"active": False}  # spent
    for junk in ("not-a-token", "a.b.c", "x" * 4000):
        assert (await introspect(client, app, junk)).json() == {"active": False}
    clock.advance(timedelta(hours=1))
    assert (await introspect(client, app, rotated.json()["access_token"])).json() == {"active": False}


async def test_rfc7662_another_clients_token_is_inactive_unless_meant_for_the_callers_audience(
    client: httpx.AsyncClient, admin: Account
) -> None:
    issuer_app = await new_app(client, admin, access_token_audience=AUDIENCE)
    resource_server = await new_app(client, admin, grant_types=[], access_token_audience=AUDIENCE)
    bystander = await new_app(client, admin, grant_types=[])
    body = await user_tokens(client, issuer_app)
    assert (await introspect(client, bystander, body["access_token"])).json() == {"active": False}
    assert (await introspect(client, bystander, body["refresh_token"])).json() == {"active": False}
    # The resource server the token is meant for sees it; refresh tokens stay their client's alone.
    assert (await introspect(client, resource_server, body["access_token"])).json()["active"] is True
    assert (await introspect(client, resource_server, body["refresh_token"])).json() == {"active": False}


async def test_rfc7662_a_client_credentials_token_is_active_while_its_client_is(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin, grant_types=["client_credentials"], scopes=["notes:read"])
    issued = await client.post("/auth/token", data={"grant_type": "client_credentials"}, headers=app.auth)
    token = issued.json()["access_token"]
    answer = (await introspect(client, app, token)).json()
    assert (answer["active"], answer["sub"], answer["scope"]) == (True, app.client_id, "notes:read")


async def test_rfc7662_public_client_cannot_introspect(client: httpx.AsyncClient, admin: Account) -> None:
    public = await new_app(client, admin, type="public")
    body = await user_tokens(client, public)
    as_public = await client.post(
        "/oauth2/introspect", data={"token": body["access_token"], "client_id": public.client_id}
    )
    assert as_public.status_code == 401
    assert as_public.json()["error"] == "invalid_client"
    _, tokens = await signed_up(client)
    anonymous = await client.post("/oauth2/introspect", data={"token": tokens.access})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    confidential = await new_app(client, admin)
    wrong = App(confidential.client_id, "wrong-secret")
    assert (await introspect(client, wrong, tokens.access)).status_code == 401


async def test_rfc7662_a_request_without_a_token_is_invalid_request(
    client: httpx.AsyncClient, admin: Account
) -> None:
    app = await new_app(client, admin)
    response = await client.post("/oauth2/introspect", data={}, headers=app.auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_rfc7662_a_disabled_clients_tokens_are_inactive(
    client: httpx.AsyncClient, admin: Account
) -> None:
    issuer_app = await new_app(client, admin, access_token_audience=AUDIENCE)
    resource_server = await new_app(client, admin, grant_types=[], access_token_audience=AUDIENCE)
    body = await user_tokens(client, issuer_app)
    assert (await introspect(client, resource_server, body["access_token"])).json()["active"] is True
    disabled = await client.patch(
        f"/admin/clients/{issuer_app.client_id}", json={"disabled": True}, headers=admin.bearer
    )
    assert disabled.status_code == 200, disabled.text
    assert (await introspect(client, resource_server, body["access_token"])).json() == {"active": False}


async def test_rfc7662_a_token_given_twice_is_invalid_request_rfc6749_3_2(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """RFC 7662 §2.1 sends its parameters as RFC 6749 does: each at most once (§3.2)."""
    app = await new_app(client, admin)
    body = await user_tokens(client, app)
    response = await client.post(
        "/oauth2/introspect", data={"token": [body["access_token"], body["refresh_token"]]}, headers=app.auth
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert (await introspect(client, app, body["access_token"])).json()["active"] is True
