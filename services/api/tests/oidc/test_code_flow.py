"""Issue 11: the authorization endpoint, the authorization code grant with PKCE and the ID token, each
test named after the OpenID Foundation conformance module or the RFC rule it checks."""

import base64
import hashlib
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from tests.auth.helpers import refresh_grant, signed_up
from tests.oidc.helpers import (
    AUTHORIZE,
    REDIRECT_URI,
    authorize_params,
    authorized_code,
    code_flow_client,
    exchange,
    location_query,
    pkce_pair,
    signed_in_browser,
    verified_id_token,
)
from tests.web.helpers import csrf_token_of


def _issuer(app: FastAPI) -> str:
    return str(app.state.settings.issuer)


async def test_oidcc_server_code_flow_with_pkce_returns_an_id_token(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    client_id = oauth_client["client_id"]
    email = await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)

    response = await exchange(client, client_id, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"].startswith("no-store")
    body = response.json()
    claims = await verified_id_token(client, body["id_token"], audience=client_id, issuer=_issuer(app))
    assert claims["nonce"] == "nonce-456"
    assert claims["azp"] == client_id
    assert claims["amr"] == ["pwd"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["id"] == claims["sub"]
    assert (claims["email"], claims["email_verified"]) == (email, me.json()["is_verified"])
    # The refresh token is bound to the client the code was issued to.
    refreshed = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": client_id},
    )
    assert refreshed.status_code == 200, refreshed.text
    assert (await refresh_grant(client, refreshed.json()["refresh_token"])).json()["error"] == "invalid_grant"


async def test_plain_oauth_without_openid_issues_no_id_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge, scope="email")
    response = await exchange(client, client_id, code, verifier)
    assert response.status_code == 200, response.text
    assert "id_token" not in response.json()


async def test_oidcc_response_type_missing(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    params = authorize_params(client_id, pkce_pair()[1])
    del params["response_type"]
    query = location_query(await client.get(AUTHORIZE, params=params))
    assert (query["error"], query["state"]) == ("invalid_request", "state-123")
    params["response_type"] = "token"
    query = location_query(await client.get(AUTHORIZE, params=params))
    assert query["error"] == "unsupported_response_type"


async def test_oidcc_ensure_registered_redirect_uri(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """An unregistered redirect URI, or an unknown client: an error page, no redirect (RFC 9700 §4.1)."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    challenge = pkce_pair()[1]
    for params in (
        authorize_params(client_id, challenge, redirect_uri="https://evil.example.net/callback"),
        authorize_params(client_id, challenge, redirect_uri=REDIRECT_URI + "/"),  # exact match only
        authorize_params("no-such-client", challenge),
    ):
        response = await client.get(AUTHORIZE, params=params)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_oidcc_ensure_redirect_uri_in_authorization_request(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    params = authorize_params(client_id, pkce_pair()[1])
    del params["redirect_uri"]
    response = await client.get(AUTHORIZE, params=params)
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_oidcc_codereuse(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    """RFC 6749 §4.1.2: a second use is refused, and what the first use issued is revoked."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    first = await exchange(client, client_id, code, verifier)
    assert first.status_code == 200, first.text
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert (await client.get("/users/me", headers=bearer)).status_code == 200

    second = await exchange(client, client_id, code, verifier)
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")
    assert (await client.get("/users/me", headers=bearer)).status_code == 401
    refreshed = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_oidcc_prompt_none_not_logged_in(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    response = await client.get(AUTHORIZE, params=authorize_params(client_id, pkce_pair()[1], prompt="none"))
    query = location_query(response)
    assert (query["error"], query["state"]) == ("login_required", "state-123")


async def test_oidcc_prompt_none_logged_in(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge, prompt="none")
    assert (await exchange(client, client_id, code, verifier)).status_code == 200


async def _sign_in_through(client: httpx.AsyncClient, signin_location: str, email: str) -> httpx.Response:
    """The browser follows the authorization endpoint's 303 to the sign-in page, signs in there, and
    follows the page's 303 back: the answer of the authorization endpoint."""
    assert signin_location.startswith("/signin?")
    page = await client.get(signin_location)
    assert page.status_code == 200, page.text
    return_to = parse_qs(urlsplit(signin_location).query)["return_to"][0]
    data = {"email": email, "password": "violet-harbor-lantern-42", "csrf_token": csrf_token_of(page)}
    signed_in = await client.post("/signin", data={**data, "return_to": return_to})
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"].startswith(AUTHORIZE + "?")
    return await client.get(signed_in.headers["location"])


async def test_oidcc_prompt_login(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI, clock: ManualClock
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    email = await signed_in_browser(client)
    first_sign_in = clock.now()
    clock.advance(timedelta(seconds=30))
    verifier, challenge = pkce_pair()
    response = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, prompt="login"))
    assert response.status_code == 303
    answer = await _sign_in_through(client, response.headers["location"], email)
    code = location_query(answer)["code"]
    tokens = (await exchange(client, client_id, code, verifier)).json()
    claims = await verified_id_token(client, tokens["id_token"], audience=client_id, issuer=_issuer(app))
    assert claims["auth_time"] >= int(first_sign_in.timestamp()) + 30


async def test_oidc_core_3_1_2_1_prompt_select_account_lets_the_user_sign_in_as_another_account(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    """`select_account`: "The Authorization Server SHOULD prompt the End-User to select a user account."
    With one account per browser and no chooser, the browser signed in as one user is sent to the sign-in
    page, where the user signs in as the account they pick; the code is that account's, and the way back
    does not ask again. Discovery lists the value."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    other, _ = await signed_up(client)
    verifier, challenge = pkce_pair()
    params = authorize_params(client_id, challenge, prompt="select_account consent")
    response = await client.get(AUTHORIZE, params=params)
    assert response.status_code == 303
    return_to = parse_qs(urlsplit(response.headers["location"]).query)["return_to"][0]
    assert "select_account" not in return_to and "consent" in return_to
    answer = await _sign_in_through(client, response.headers["location"], other)
    tokens = (await exchange(client, client_id, location_query(answer)["code"], verifier)).json()
    claims = await verified_id_token(client, tokens["id_token"], audience=client_id, issuer=_issuer(app))
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    userinfo = await client.get("/oauth2/userinfo", headers=bearer)
    assert userinfo.json()["email"] == other and claims["sub"] == userinfo.json()["sub"]
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert "select_account" in discovery["prompt_values_supported"]


async def test_oidcc_max_age_1(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI, clock: ManualClock
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    email = await signed_in_browser(client)
    clock.advance(timedelta(seconds=2))
    verifier, challenge = pkce_pair()
    response = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, max_age="1"))
    assert response.status_code == 303
    answer = await _sign_in_through(client, response.headers["location"], email)
    tokens = (await exchange(client, client_id, location_query(answer)["code"], verifier)).json()
    claims = await verified_id_token(client, tokens["id_token"], audience=client_id, issuer=_issuer(app))
    assert claims["auth_time"] == int(clock.now().timestamp())


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    params = authorize_params(client_id, challenge)
    del params["nonce"]
    code = location_query(await client.get(AUTHORIZE, params=params))["code"]
    tokens = (await exchange(client, client_id, code, verifier)).json()
    claims = await verified_id_token(client, tokens["id_token"], audience=client_id, issuer=_issuer(app))
    assert "nonce" not in claims


async def test_oidcc_ensure_request_with_unknown_parameter_succeeds(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(
        client, client_id, challenge, extra="foobar", ui_locales="de", acr_values="1", login_hint="x@y.z"
    )
    assert (await exchange(client, client_id, code, verifier)).status_code == 200


async def test_oidc_core_3_1_2_6_request_objects_are_refused_as_unsupported(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """OpenID Connect Core §6 and §3.1.2.6: an OP that takes no request objects answers `request`,
    `request_uri` and `registration` with their own errors, never a code made from the query alone (the
    object could say another state, nonce or max_age). The conformance suite's request-object modules
    accept exactly this refusal; the discovery document says both are unsupported."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    challenge = pkce_pair()[1]
    unsigned_object = (
        ".".join(
            base64.urlsafe_b64encode(part).rstrip(b"=").decode()
            for part in (b'{"alg":"none"}', b'{"state":"from-the-object","nonce":"n"}')
        )
        + "."
    )
    for name, value, error in (
        ("request", unsigned_object, "request_not_supported"),
        ("request_uri", "https://app.example.com/request.jwt", "request_uri_not_supported"),
        ("registration", '{"client_name":"x"}', "registration_not_supported"),
    ):
        params = authorize_params(client_id, challenge, **{name: value})
        query = location_query(await client.get(AUTHORIZE, params=params))
        assert query["error"] == error, name
        assert query["state"] == "state-123"
        assert "code" not in query
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["request_parameter_supported"] is False
    assert discovery["request_uri_parameter_supported"] is False


async def test_oauth_multiple_response_types_2_1_a_response_mode_other_than_query_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """`response_mode` (OAuth 2.0 Multiple Response Type Encoding Practices §2.1): discovery lists `query`
    alone, so a client asking for `fragment` or `form_post` is told so (in the query, the one mode there
    is) instead of getting its code where it did not ask for it; `query` itself works."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    for mode in ("fragment", "form_post", "query.jwt", "Query"):
        params = authorize_params(client_id, challenge, response_mode=mode)
        query = location_query(await client.get(AUTHORIZE, params=params))
        assert query["error"] == "invalid_request", mode
        assert "response_mode" in query["error_description"]
        assert "code" not in query
    code = await authorized_code(client, client_id, challenge, response_mode="query")
    assert (await exchange(client, client_id, code, verifier)).status_code == 200
    # RFC 6749 §3.1: sent without a value, it is as if omitted.
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge, response_mode="", request="", request_uri="")
    assert (await exchange(client, client_id, code, verifier)).status_code == 200


async def test_rfc7636_plain_method_is_refused(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    """PKCE S256 for every client: a `plain` or missing method, or no challenge at all, is refused."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    plain = authorize_params(client_id, verifier, code_challenge_method="plain")
    no_method = authorize_params(client_id, challenge)
    del no_method["code_challenge_method"]
    no_challenge = authorize_params(client_id, challenge)
    del no_challenge["code_challenge"]
    for params in (plain, no_method, no_challenge):
        query = location_query(await client.get(AUTHORIZE, params=params))
        assert query["error"] == "invalid_request"


async def test_rfc7636_wrong_verifier_is_invalid_grant(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    wrong = await exchange(client, client_id, code, pkce_pair()[0])
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    other_uri = await exchange(
        client, client_id, code, verifier, redirect_uri="https://app.example.com/other"
    )
    assert other_uri.json()["error"] == "invalid_grant"
    # The refusals spent nothing: the code still works with its own verifier.
    assert (await exchange(client, client_id, code, verifier)).status_code == 200


async def test_rfc9207_iss_on_every_authorization_response(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    challenge = pkce_pair()[1]
    not_signed_in = location_query(
        await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, prompt="none"))
    )
    await signed_in_browser(client)
    refused = location_query(
        await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, scope="openid admin"))
    )
    granted = location_query(await client.get(AUTHORIZE, params=authorize_params(client_id, challenge)))
    assert refused["error"] == "invalid_scope"
    for query in (not_signed_in, refused, granted):
        assert query["iss"] == _issuer(app)
        assert query["state"] == "state-123"


async def test_code_expires_after_60_seconds(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    clock.advance(timedelta(seconds=60))
    expired = await exchange(client, client_id, code, verifier)
    assert (expired.status_code, expired.json()["error"]) == (400, "invalid_grant")

    fresh = await authorized_code(client, client_id, challenge)
    clock.advance(timedelta(seconds=59))
    assert (await exchange(client, client_id, fresh, verifier)).status_code == 200


async def test_code_for_another_client_is_invalid_grant(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    other_id = (await code_flow_client(client, db_session, name="Other app"))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    stolen = await exchange(client, other_id, code, verifier)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    assert (await exchange(client, client_id, code, verifier)).status_code == 200


async def test_authorize_by_post_works_like_get(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    query = location_query(await client.post(AUTHORIZE, data=authorize_params(client_id, challenge)))
    assert (await exchange(client, client_id, query["code"], verifier)).status_code == 200


async def test_signin_page_returning_to_authorize_lets_its_form_reach_the_registered_client_only(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Chromium applies `form-action` to the redirects after a form's POST (/signin → /oauth2/authorize →
    the client): the sign-in page of an authorization request allows the registered redirect URI's origin,
    and nothing for an unregistered one."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    challenge = pkce_pair()[1]
    to_signin = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge))
    page = await client.get(to_signin.headers["location"])
    assert "form-action 'self' https://app.example.com;" in page.headers["content-security-policy"]

    forged = authorize_params(client_id, challenge, redirect_uri="https://evil.example.net/callback")
    return_to = f"{AUTHORIZE}?{urlencode(forged)}"
    page = await client.get("/signin", params={"return_to": return_to})
    assert page.status_code == 200
    assert "form-action 'self';" in page.headers["content-security-policy"]
    assert "evil" not in page.headers["content-security-policy"]


async def test_oidcc_login_hint_prefills_the_sign_in_page(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    params = authorize_params(client_id, pkce_pair()[1], login_hint="someone@example.org")
    to_signin = await client.get(AUTHORIZE, params=params)
    page = await client.get(to_signin.headers["location"])
    assert 'value="someone@example.org"' in page.text


async def test_rfc6749_3_1_a_parameter_given_twice_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """ "Request and response parameters MUST NOT be included more than once." A repeated parameter is
    sent back as invalid_request (without a repeated state), never one of its values picked; a repeated
    client_id or redirect_uri leaves no redirect URI to trust: an error page, no redirect."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    params: dict[str, str | list[str]] = {**authorize_params(client_id, pkce_pair()[1])}
    for name, values in (
        ("scope", ["openid email", "openid"]),
        ("code_challenge_method", ["S256", "plain"]),
        ("prompt", ["none", "login"]),
    ):
        query = location_query(await client.get(AUTHORIZE, params={**params, name: values}))
        assert query["error"] == "invalid_request", name
        assert name in query["error_description"]
        assert query["state"] == "state-123"
        assert "code" not in query
    query = location_query(await client.get(AUTHORIZE, params={**params, "state": ["a", "b"]}))
    assert query["error"] == "invalid_request"
    assert "state" not in query
    for name in ("client_id", "redirect_uri"):
        response = await client.get(AUTHORIZE, params={**params, name: [str(params[name])] * 2})
        assert response.status_code == 400, name
        assert "location" not in response.headers
    # The same request with each parameter once is answered with a code.
    assert "code" in location_query(await client.get(AUTHORIZE, params=params))
