"""Issue 11: the OpenID Foundation conformance suite's Basic OP and Config OP modules not covered in
test_code_flow.py, each test named after its module (`oidcc-scope-profile` is `test_oidcc_scope_profile`),
and `ui_locales` on the hosted pages. What each module asserts was read from the suite's own modules and
conditions; the tests check the same here, against real Postgres over real HTTP."""

import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.core.clock import ManualClock
from tests.auth.helpers import PASSWORD, signed_up
from tests.clients.helpers import basic
from tests.oauth.conftest import payload
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
from tests.web.helpers import csrf_token_of, sign_in

ALL_SCOPES = ["openid", "profile", "email"]
# OpenID Connect Core §5.4: the standard claims each scope asks for (the suite's table of them).
PROFILE_CLAIMS = {
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
}
EMAIL_CLAIMS = {"email", "email_verified"}
# Claims of every ID token that are about the token, not the user (OIDC Core §2).
TOKEN_CLAIMS = {"iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "amr", "acr", "at_hash", "nonce"}


def _issuer(app: FastAPI) -> str:
    return str(app.state.settings.issuer)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _browser_with_name(client: httpx.AsyncClient, display_name: str | None) -> str:
    """A user signed in on the hosted pages, with a display name if given; their email."""
    email, tokens = await signed_up(client)
    if display_name is not None:
        named = await client.patch("/users/me", json={"display_name": display_name}, headers=tokens.bearer)
        assert named.status_code == 200, named.text
    assert (await sign_in(client, email)).status_code == 303
    return email


async def _claims_for_scope(
    client: httpx.AsyncClient, app: FastAPI, client_id: str, scope: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The signed-in browser's code flow with `scope`: the ID token's claims and UserInfo's answer."""
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge, scope=scope)
    tokens = await exchange(client, client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    claims = await verified_id_token(client, body["id_token"], audience=client_id, issuer=_issuer(app))
    userinfo = await client.get("/oauth2/userinfo", headers=_bearer(body["access_token"]))
    assert userinfo.status_code == 200, userinfo.text
    info: dict[str, Any] = userinfo.json()
    assert info["sub"] == claims["sub"]  # OIDC Core §5.3.2: the ID token's subject
    return claims, info


def _user_claims(claims: dict[str, Any]) -> set[str]:
    return set(claims) - TOKEN_CLAIMS


async def test_oidcc_scope_profile(client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI) -> None:
    """`openid profile`: the profile claims pyauth keeps (name, locale, updated_at), with the standard
    claims' types (§5.1), in UserInfo and the ID token alike; no email claim."""
    client_id = (await code_flow_client(client, db_session, scopes=ALL_SCOPES))["client_id"]
    await _browser_with_name(client, "Ada Lovelace")
    claims, info = await _claims_for_scope(client, app, client_id, "openid profile")

    assert set(info) == {"sub", "name", "locale", "updated_at"}
    assert _user_claims(claims) == {"name", "locale", "updated_at"}
    assert set(info) - {"sub"} <= PROFILE_CLAIMS
    assert (info["name"], info["locale"]) == ("Ada Lovelace", "en")
    assert isinstance(info["updated_at"], int)  # a number of seconds, not a date string
    for name in ("name", "locale", "updated_at"):
        assert claims[name] == info[name]


async def test_oidcc_scope_email(client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI) -> None:
    client_id = (await code_flow_client(client, db_session, scopes=ALL_SCOPES))["client_id"]
    email = await _browser_with_name(client, "Ada Lovelace")
    claims, info = await _claims_for_scope(client, app, client_id, "openid email")

    assert info == {"sub": claims["sub"], "email": email, "email_verified": False}
    assert _user_claims(claims) == EMAIL_CLAIMS
    assert (claims["email"], claims["email_verified"]) == (email, False)


async def test_oidcc_scope_all(client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI) -> None:
    """The suite asks for `address email phone profile`, and skips a server whose `scopes_supported` lacks
    one: pyauth keeps no address or phone, so it lists neither, and all it serves is `profile` and
    `email`. A claim without a value (no display name) is left out, never sent empty."""
    scopes_supported = (await client.get("/.well-known/openid-configuration")).json()["scopes_supported"]
    assert "address" not in scopes_supported and "phone" not in scopes_supported
    client_id = (await code_flow_client(client, db_session, scopes=ALL_SCOPES))["client_id"]
    email = await _browser_with_name(client, None)
    claims, info = await _claims_for_scope(client, app, client_id, "openid profile email")

    assert set(info) == {"sub", "email", "email_verified", "locale", "updated_at"}
    assert _user_claims(claims) == set(info) - {"sub"}
    assert set(info) - {"sub"} <= PROFILE_CLAIMS | EMAIL_CLAIMS
    assert info["email"] == email
    # And `openid` alone grants no user claim at all.
    claims, info = await _claims_for_scope(client, app, client_id, "openid")
    assert (_user_claims(claims), info) == (set(), {"sub": claims["sub"]})


async def test_oidcc_ensure_other_scope_order_succeeds(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    """`email openid` is the same request as `openid email` (scope is a set, RFC 6749 §3.3)."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    email = await signed_in_browser(client)
    reordered, reordered_info = await _claims_for_scope(client, app, client_id, "email openid")
    usual, usual_info = await _claims_for_scope(client, app, client_id, "openid email")
    assert set(reordered) == set(usual)
    assert reordered_info == usual_info == {"sub": usual["sub"], "email": email, "email_verified": False}


async def _sign_in_through(
    client: httpx.AsyncClient, authorize_answer: httpx.Response, email: str, **headers: str
) -> httpx.Response:
    """The browser follows the authorization endpoint's 303 to the sign-in page, signs in there and
    follows the page's 303 back: the authorization endpoint's next answer."""
    assert authorize_answer.status_code == 303, authorize_answer.text
    location = authorize_answer.headers["location"]
    page = await client.get(location, headers=headers)
    assert page.status_code == 200, page.text
    return_to = parse_qs(urlsplit(location).query)["return_to"][0]
    form = {"email": email, "password": PASSWORD, "csrf_token": csrf_token_of(page), "return_to": return_to}
    signed_in = await client.post("/signin", data=form, headers=headers)
    assert signed_in.status_code == 303, signed_in.text
    return await client.get(signed_in.headers["location"], headers=headers)


async def test_oidcc_display_page(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    """`display=page` (OIDC Core §3.1.2.1) is the hosted pages' only way of showing themselves: the normal
    sign-in page, then the code. The other values (`popup`, `touch`, `wap`, or one pyauth does not know)
    get the same pages, which fit a popup and a phone: accepted, never an error."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    email, _ = await signed_up(client)
    verifier, challenge = pkce_pair()
    to_signin = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, display="page"))
    answer = await _sign_in_through(client, to_signin, email)
    assert (await exchange(client, client_id, location_query(answer)["code"], verifier)).status_code == 200

    for display in ("popup", "touch", "wap", "something-else"):
        verifier, challenge = pkce_pair()
        code = await authorized_code(client, client_id, challenge, display=display)
        assert (await exchange(client, client_id, code, verifier)).status_code == 200, display


async def test_oidcc_max_age_10000(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI, clock: ManualClock
) -> None:
    """Signed in a minute ago: `max_age=15000`, then `max_age=10000`, each answered with a code at once
    (no sign-in asked for), and both ID tokens carry the same `auth_time` (the sign-in's) and `sub`."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    signed_in_at = int(clock.now().timestamp())
    id_tokens = []
    for max_age in ("15000", "10000"):
        clock.advance(timedelta(seconds=60))
        verifier, challenge = pkce_pair()
        response = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, max_age=max_age))
        code = location_query(response)["code"]  # a 302 to the client, not a 303 to /signin
        tokens = (await exchange(client, client_id, code, verifier)).json()
        id_tokens.append(
            await verified_id_token(client, tokens["id_token"], audience=client_id, issuer=_issuer(app))
        )
    first, second = id_tokens
    assert first["auth_time"] == second["auth_time"] == signed_in_at
    assert first["sub"] == second["sub"]


async def test_oidcc_ensure_request_with_acr_values_succeeds(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    """`acr_values` is accepted (OIDC Core §15.1: the minimum is that it causes no error), also with values
    pyauth does not define: they are ignored (issue 12: pyauth's two classes are advertised, and the ID
    token's `acr` says which one the sign-in met; how the user signed in is in `amr`, RFC 8176)."""
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["acr_values_supported"] == ["urn:pyauth:acr:pwd", "urn:pyauth:acr:mfa"]
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge, acr_values="1 2")
    tokens = (await exchange(client, client_id, code, verifier)).json()
    claims = await verified_id_token(client, tokens["id_token"], audience=client_id, issuer=_issuer(app))
    assert claims["acr"] == "urn:pyauth:acr:pwd"
    assert claims["amr"] == ["pwd"]


async def _confidential_code_flow_client(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> tuple[str, str]:
    registered = await code_flow_client(client, db_session, type="confidential", scopes=ALL_SCOPES)
    return registered["client_id"], registered["client_secret"]


async def _exchange_as(
    client: httpx.AsyncClient, client_id: str, secret: str, code: str, verifier: str
) -> httpx.Response:
    """The token request of a confidential client (client_secret_basic), as the suite sends it."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    return await client.post("/auth/token", data=form, headers=basic(client_id, secret))


async def test_oidcc_codereuse_30seconds(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RFC 6749 §4.1.2: a code used again 30 s later (still within its 60 s) is refused with
    `invalid_grant`, and every token its first use issued is revoked: introspection (RFC 7662) calls the
    access token and the refresh token inactive, UserInfo refuses the access token, and the refresh token
    no longer refreshes. The replay is audited with the client id, never the code."""
    client_id, secret = await _confidential_code_flow_client(client, db_session)
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    first = await _exchange_as(client, client_id, secret, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()

    async def introspected(token: str) -> dict[str, Any]:
        response = await client.post(
            "/oauth2/introspect", data={"token": token}, headers=basic(client_id, secret)
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert (await introspected(tokens["access_token"]))["active"] is True
    clock.advance(timedelta(seconds=30))
    with caplog.at_level(logging.INFO):
        replay = await _exchange_as(client, client_id, secret, code, verifier)

    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert replay.headers["content-type"].startswith("application/json")
    assert await introspected(tokens["access_token"]) == {"active": False}
    assert await introspected(tokens["refresh_token"]) == {"active": False}
    assert (await client.get("/oauth2/userinfo", headers=_bearer(tokens["access_token"]))).status_code == 401
    refresh = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(client_id, secret),
    )
    assert (refresh.status_code, refresh.json()["error"]) == (400, "invalid_grant")

    [row] = (
        await db_session.scalars(
            select(AuditEntry).where(AuditEntry.event == "authorization_code.reuse_detected")
        )
    ).all()
    assert row.details == {"client_id": client_id, "ended": 1}
    assert row.user_id is not None and row.session_id is not None
    every_row = (await db_session.scalars(select(AuditEntry))).all()
    assert not any(code in f"{entry.details} {entry.reason} {entry.user_agent}" for entry in every_row)
    assert any("authorization code replayed" in record.getMessage() for record in caplog.records)
    assert not any(code in record.getMessage() for record in caplog.records)


async def test_a_code_replayed_by_another_client_is_audited_with_both_client_ids(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """A stolen spent code presented by another client still ends what the code issued, and the audit row
    names the code's client and the one that presented it."""
    client_id, secret = await _confidential_code_flow_client(client, db_session)
    thief_id, thief_secret = await _confidential_code_flow_client(client, db_session)
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    tokens = (await _exchange_as(client, client_id, secret, code, verifier)).json()

    stolen = await _exchange_as(client, thief_id, thief_secret, code, verifier)
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    assert (await client.get("/oauth2/userinfo", headers=_bearer(tokens["access_token"]))).status_code == 401
    [row] = (
        await db_session.scalars(
            select(AuditEntry).where(AuditEntry.event == "authorization_code.reuse_detected")
        )
    ).all()
    assert row.details == {"client_id": client_id, "ended": 1, "presented_by": thief_id}


async def test_oidcc_refresh_token(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI, clock: ManualClock
) -> None:
    """A code-flow refresh token refreshes (with the original `scope`, as the suite sends it): a new access
    token with the same scope, a new refresh token (rotation), and a new ID token (pyauth returns one when
    the scope holds `openid`; OIDC Core §12.2: the same `iss`, `sub`, `aud`, `azp` and `auth_time`, a new
    `iat`, no `nonce`). Another client's refresh token is `invalid_grant`, and stays its owner's."""
    client_id, secret = await _confidential_code_flow_client(client, db_session)
    other_id, other_secret = await _confidential_code_flow_client(client, db_session)
    await signed_in_browser(client)
    issuer = _issuer(app)

    async def code_flow_tokens(as_id: str, as_secret: str) -> dict[str, Any]:
        verifier, challenge = pkce_pair()
        code = await authorized_code(client, as_id, challenge, scope="openid email")
        response = await _exchange_as(client, as_id, as_secret, code, verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = await code_flow_tokens(client_id, secret)
    clock.advance(timedelta(seconds=1))  # as the suite waits, so that `iat` differs
    refreshed = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": "openid email",
        },
        headers=basic(client_id, secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"].startswith("no-store")
    second = refreshed.json()
    assert second["token_type"] == "Bearer"
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "openid email"  # echoed: the request named it (RFC 6749 §5.1)
    assert (
        payload(second["access_token"])["scope"] == payload(first["access_token"])["scope"] == "openid email"
    )
    info = await client.get("/oauth2/userinfo", headers=_bearer(second["access_token"]))
    assert info.status_code == 200 and "email" in info.json()

    before = await verified_id_token(client, first["id_token"], audience=client_id, issuer=issuer)
    after = await verified_id_token(client, second["id_token"], audience=client_id, issuer=issuer)
    for name in ("iss", "sub", "aud", "azp", "auth_time", "email"):
        assert after[name] == before[name], name
    assert after["iat"] == before["iat"] + 1
    assert "nonce" in before and "nonce" not in after

    # The other client's refresh token, presented by this client: invalid_grant, and still the owner's.
    others = await code_flow_tokens(other_id, other_secret)
    stolen = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": others["refresh_token"],
            "scope": "openid email",
        },
        headers=basic(client_id, secret),
    )
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")
    own = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": others["refresh_token"]},
        headers=basic(other_id, other_secret),
    )
    assert own.status_code == 200, own.text
    # A refresh that narrows the scope to no `openid` has no ID token.
    narrowed = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"], "scope": "email"},
        headers=basic(client_id, secret),
    )
    assert narrowed.status_code == 200, narrowed.text
    assert "id_token" not in narrowed.json() or narrowed.json()["id_token"] is None


# Where a plain-http URL is allowed: a development issuer on this machine.
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# RFC 6749 §3.3: a scope token is 1*NQCHAR.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
# BCP 47 in the shape `ui_locales_supported` uses: a language, then subtags.
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def _assert_https_or_loopback(url: str, name: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK), (name, url)
    assert parts.netloc and not parts.fragment, (name, url)


async def _verify_discovery(client: httpx.AsyncClient, issuer: str) -> None:
    """What the suite's `oidcc-discovery-endpoint-verification` checks, for the issuer `issuer`."""
    url = f"{issuer}/.well-known/openid-configuration"
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    # OIDC Discovery §3 REQUIRED, and RFC 8414 §2 REQUIRED for a server with both endpoints.
    for name in (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ):
        assert name in document, name
    # RECOMMENDED by OIDC Discovery §3, and served.
    for name in ("userinfo_endpoint", "scopes_supported", "claims_supported"):
        assert name in document, name
    # OIDC Discovery §4.3 and RFC 8414 §3.3: the issuer is exactly the URL the document is served under.
    assert document["issuer"] == issuer
    assert url == document["issuer"] + "/.well-known/openid-configuration"
    parts = urlsplit(document["issuer"])
    assert not parts.query and not parts.fragment  # RFC 8414 §2
    _assert_https_or_loopback(document["issuer"], "issuer")
    # RFC 8414 §3: the same issuer at the authorization-server address.
    rfc8414 = await client.get(f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server")
    assert rfc8414.status_code == 200 and rfc8414.json()["issuer"] == issuer
    # Every endpoint: an absolute https URL (http only on loopback), under the issuer.
    for name, value in document.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            _assert_https_or_loopback(value, name)
            assert value.startswith(issuer + "/"), (name, value)
    assert "code" in document["response_types_supported"]
    assert document["subject_types_supported"] and set(document["subject_types_supported"]) <= {
        "public",
        "pairwise",
    }
    algorithms = document["id_token_signing_alg_values_supported"]
    assert algorithms and "none" not in algorithms
    assert isinstance(document["grant_types_supported"], list)
    assert {"authorization_code", "refresh_token"} <= set(document["grant_types_supported"])
    assert "openid" in document["scopes_supported"]
    assert all(_SCOPE_TOKEN.fullmatch(scope) for scope in document["scopes_supported"])
    assert all(_LANGUAGE_TAG.fullmatch(tag) for tag in document["ui_locales_supported"])
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert {"sub", "iss", "aud", "exp", "iat", "auth_time"} <= set(document["claims_supported"])
    # The published keys: public and asymmetric only (RFC 7518 §6).
    jwks = (await client.get(document["jwks_uri"])).json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["kty"] in {"EC", "RSA", "OKP"}
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)


async def test_oidcc_discovery_endpoint_verification(client: httpx.AsyncClient, app: FastAPI) -> None:
    """OIDC Discovery 1.0 §3/§4 and RFC 8414 §2/§3, for a loopback development issuer and a public https
    one (PUBLIC_BASE_URL): the document follows the issuer it is configured with."""
    await _verify_discovery(client, _issuer(app))
    app.state.settings = app.state.settings.model_copy(
        update={"PUBLIC_BASE_URL": "https://auth.example.com/"}
    )
    await _verify_discovery(client, "https://auth.example.com")


def _language_of(page: httpx.Response) -> str:
    found = re.search(r'<html lang="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_ui_locales_chooses_the_language_of_the_sign_in_and_consent_pages(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """OIDC Core §3.1.2.1 `ui_locales`: the first language in it that pyauth has (`fr-CA` no, `de-CH` is
    `de`) wins over the browser's Accept-Language, on every page of the request: the sign-in page, its
    re-display after a wrong password, the sign-up page it links to, and the consent page."""
    client_id = (await code_flow_client(client, db_session, first_party=False))["client_id"]
    email, _ = await signed_up(client)
    english = {"Accept-Language": "en"}
    params = authorize_params(client_id, pkce_pair()[1], ui_locales="fr-CA de-CH en")
    to_signin = await client.get(AUTHORIZE, params=params, headers=english)
    assert to_signin.status_code == 303
    page = await client.get(to_signin.headers["location"], headers=english)
    assert _language_of(page) == "de" and "Anmelden" in page.text

    return_to = parse_qs(urlsplit(to_signin.headers["location"]).query)["return_to"][0]
    wrong = {"email": email, "password": "not-the-password-at-all", "return_to": return_to}
    refused = await client.post("/signin", data={**wrong, "csrf_token": csrf_token_of(page)}, headers=english)
    assert refused.status_code == 400 and _language_of(refused) == "de"
    signup_link = re.search(r'href="(/signup\?[^"]+)"', page.text)
    assert signup_link is not None
    signup = await client.get(signup_link.group(1).replace("&amp;", "&"), headers=english)
    assert _language_of(signup) == "de"

    consent = await _sign_in_through(client, to_signin, email, **english)
    assert consent.status_code == 200, consent.text
    assert _language_of(consent) == "de" and "Zugriff erlauben" in consent.text


async def test_without_ui_locales_the_pages_follow_accept_language(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """No `ui_locales`, or one naming no language pyauth has: the Accept-Language choice, as before."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    challenge = pkce_pair()[1]
    for extra, accept_language, expected in (
        ({}, "de", "de"),
        ({}, "en", "en"),
        ({"ui_locales": "fr ja"}, "de", "de"),
        ({"ui_locales": "fr ja"}, "en", "en"),
    ):
        params = authorize_params(client_id, challenge, **extra)
        to_signin = await client.get(AUTHORIZE, params=params, headers={"Accept-Language": accept_language})
        page = await client.get(to_signin.headers["location"], headers={"Accept-Language": accept_language})
        assert _language_of(page) == expected, (extra, accept_language)
    plain = await client.get("/signin", headers={"Accept-Language": "de"})
    assert _language_of(plain) == "de"
