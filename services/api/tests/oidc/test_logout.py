"""Issue 11: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at the end-session endpoint, and
the `id_token_hint` of the authorization request (conformance module `oidcc-id-token-hint`)."""

import base64
import json
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.auth.models import AuthSession
from app.core.clock import ManualClock
from app.sso.models import BrowserSession
from app.users.models import User
from tests.admin.helpers import audit_rows
from tests.auth.helpers import password_grant, refresh_grant
from tests.oidc.helpers import (
    AUTHORIZE,
    authorize_params,
    authorized_code,
    code_flow_client,
    exchange,
    location_query,
    pkce_pair,
    signed_in_browser,
)
from tests.web.helpers import csrf_token_of, sign_in

LOGOUT = "/oauth2/logout"
BYE = "https://app.example.com/signed-out"


async def _app_signed_in(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> tuple[str, str, dict[str, Any]]:
    """A client app with a registered post-logout URI and a user signed in to it through the browser:
    the client_id, the user's email, and the app's tokens (with the ID token)."""
    client_id = (await code_flow_client(client, db_session, post_logout_redirect_uris=[BYE]))["client_id"]
    email = await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    response = await exchange(client, client_id, code, verifier)
    assert response.status_code == 200, response.text
    return client_id, email, response.json()


async def _browser_session(db: AsyncSession, email: str) -> BrowserSession:
    user = await db.scalar(select(User).where(User.email == email))
    assert user is not None
    found = await db.scalar(
        select(BrowserSession)
        .where(BrowserSession.user_id == user.id)
        .order_by(BrowserSession.created_at.desc())
    )
    assert found is not None
    await db.refresh(found)
    return found


async def _prompt_none(client: httpx.AsyncClient, client_id: str, **extra: str) -> dict[str, str]:
    params = authorize_params(client_id, pkce_pair()[1], prompt="none", **extra)
    return location_query(await client.get(AUTHORIZE, params=params))


def _refused_without_redirect(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_rp_initiated_logout_with_a_hint_for_the_signed_in_user_ends_the_session_and_returns_state(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, email, tokens = await _app_signed_in(client, db_session)
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "s t&x=1"}
    response = await client.get(LOGOUT, params={**params, "ui_locales": "de", "unknown": "ignored"})

    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(BYE + "?")
    assert parse_qs(urlsplit(location).query) == {"state": ["s t&x=1"]}
    assert "pyauth_sso" not in client.cookies
    row = await _browser_session(db_session, email)
    assert row.ended_at is not None and row.ended_reason == "signed_out"
    # Audited like /signout, naming the client.
    logouts = await audit_rows(db_session, row.user_id, AuditEvent.LOGOUT)
    assert [(entry.details or {}).get("client_id") for entry in logouts] == [client_id]
    # The browser is signed out for every client: prompt=none now answers login_required.
    assert (await _prompt_none(client, client_id))["error"] == "login_required"


async def test_rp_initiated_logout_without_post_logout_redirect_uri_lands_on_the_signed_out_page(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    _, email, tokens = await _app_signed_in(client, db_session)
    response = await client.get(LOGOUT, params={"id_token_hint": tokens["id_token"], "state": "unused"})
    assert (response.status_code, response.headers["location"]) == (303, "/signed-out")
    assert (await _browser_session(db_session, email)).ended_at is not None


async def test_rp_initiated_logout_ends_the_refresh_tokens_the_client_got_through_that_browser_session(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Like Keycloak's client sessions: the app's tokens from this sign-in end with it; the same user's
    tokens from elsewhere (a password grant of the built-in client) and other apps' stay."""
    client_id, email, tokens = await _app_signed_in(client, db_session)
    other_id = (await code_flow_client(client, db_session, name="Other app"))["client_id"]
    verifier, challenge = pkce_pair()
    other = (
        await exchange(client, other_id, await authorized_code(client, other_id, challenge), verifier)
    ).json()
    elsewhere = (await password_grant(client, email)).json()

    response = await client.get(LOGOUT, params={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 303

    ended = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert ended.json()["error"] == "invalid_grant"
    sid = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    reason = await db_session.scalar(
        select(AuthSession.revoked_reason).where(AuthSession.id == uuid.UUID(sid))
    )
    assert reason == "rp_initiated_logout"
    kept = await client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": other["refresh_token"], "client_id": other_id},
    )
    assert kept.status_code == 200, kept.text
    assert (await refresh_grant(client, elsewhere["refresh_token"])).status_code == 200


async def test_rp_initiated_logout_accepts_an_expired_id_token_hint(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    _, email, tokens = await _app_signed_in(client, db_session)
    clock.advance(timedelta(hours=1))  # the ID token lives 5 minutes; the browser session a day idle
    exp = jwt.decode(tokens["id_token"], options={"verify_signature": False})["exp"]
    assert exp < clock.now().timestamp()
    response = await client.get(
        LOGOUT, params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE}
    )
    assert (response.status_code, response.headers["location"]) == (303, BYE)
    assert (await _browser_session(db_session, email)).ended_at is not None


async def test_rp_initiated_logout_refuses_a_forged_id_token_hint(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    """A hint pyauth did not sign (another key under pyauth's kid, a changed payload, `alg: none`, another
    issuer) or that is not an ID token (an access token): an error page, no redirect, still signed in."""
    client_id, email, tokens = await _app_signed_in(client, db_session)
    real = tokens["id_token"]
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    head, _, signature = real.split(".")
    forged = [
        jwt.encode(claims, foreign_key, algorithm="ES256", headers={"kid": header["kid"], "typ": "JWT"}),
        f"{head}.{_b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}",
        f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}.",
        jwt.encode(
            {**claims, "iss": "https://evil.example.net"},
            foreign_key,
            algorithm="ES256",
            headers={"kid": "not-a-pyauth-key", "typ": "JWT"},
        ),
        tokens["access_token"],
        "not-a-jwt",
    ]
    for hint in forged:
        response = await client.get(LOGOUT, params={"id_token_hint": hint, "post_logout_redirect_uri": BYE})
        _refused_without_redirect(response)
    assert (await _browser_session(db_session, email)).ended_at is None
    assert "code" in await _prompt_none(client, client_id)


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example.net/signed-out",  # another host
        "https://app.example.com.evil.example.net/signed-out",  # a host with the registered one as prefix
        BYE + "/../../evil",  # a prefix match
        BYE + "x",
        BYE + "?next=https://evil.example.net",  # an extra query
        "http://app.example.com/signed-out",  # another scheme
        "HTTPS://APP.EXAMPLE.COM/signed-out",  # not the exact string
        "//evil.example.net",
    ],
)
async def test_rp_initiated_logout_refuses_an_unregistered_post_logout_redirect_uri_without_redirecting(
    client: httpx.AsyncClient, db_session: AsyncSession, uri: str
) -> None:
    client_id, email, tokens = await _app_signed_in(client, db_session)
    for params in (
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri, "state": "s"},
        {"client_id": client_id, "post_logout_redirect_uri": uri},
    ):
        _refused_without_redirect(await client.get(LOGOUT, params=params))
    assert (await _browser_session(db_session, email)).ended_at is None


async def test_rp_initiated_logout_refuses_a_post_logout_redirect_uri_without_a_known_client(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """No hint and no client_id, or an unknown client: nobody registered the URI, so no redirect."""
    _, email, _ = await _app_signed_in(client, db_session)
    for params in (
        {"post_logout_redirect_uri": BYE},
        {"client_id": "no-such-client", "post_logout_redirect_uri": BYE},
    ):
        _refused_without_redirect(await client.get(LOGOUT, params=params))
    assert (await _browser_session(db_session, email)).ended_at is None


async def test_rp_initiated_logout_refuses_a_client_id_that_is_not_the_hints_audience(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    _, email, tokens = await _app_signed_in(client, db_session)
    other_id = (
        await code_flow_client(client, db_session, name="Other app", post_logout_redirect_uris=[BYE])
    )["client_id"]
    params = {"id_token_hint": tokens["id_token"], "client_id": other_id, "post_logout_redirect_uri": BYE}
    _refused_without_redirect(await client.get(LOGOUT, params=params))
    assert (await _browser_session(db_session, email)).ended_at is None


async def test_rp_initiated_logout_without_a_hint_asks_for_confirmation_and_a_get_ends_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """A GET from any site must not sign the user out: the page asks, its CSRF-checked POST signs out and
    then goes where the request asked, checked again."""
    client_id, email, _ = await _app_signed_in(client, db_session)
    params = {"client_id": client_id, "post_logout_redirect_uri": BYE, "state": "xyz"}
    page = await client.get(LOGOUT, params=params)
    assert page.status_code == 200, page.text
    assert email in page.text and f'action="{LOGOUT}"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # The form's POST redirects to the app: Chromium applies form-action to that redirect.
    assert "form-action 'self' https://app.example.com;" in page.headers["content-security-policy"]
    assert (await _browser_session(db_session, email)).ended_at is None
    assert "code" in await _prompt_none(client, client_id)

    form = {**params, "csrf_token": csrf_token_of(page), "logout": "confirm"}
    response = await client.post(LOGOUT, data=form)
    assert (response.status_code, response.headers["location"]) == (303, f"{BYE}?state=xyz")
    assert (await _browser_session(db_session, email)).ended_at is not None
    assert "pyauth_sso" not in client.cookies
    assert (await _prompt_none(client, client_id))["error"] == "login_required"


async def test_rp_initiated_logout_confirmation_checks_the_return_address_again(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, email, _ = await _app_signed_in(client, db_session)
    page = await client.get(LOGOUT, params={"client_id": client_id})
    assert page.status_code == 200
    form = {
        "client_id": client_id,
        "post_logout_redirect_uri": "https://evil.example.net/",
        "csrf_token": csrf_token_of(page),
        "logout": "confirm",
    }
    _refused_without_redirect(await client.post(LOGOUT, data=form))
    assert (await _browser_session(db_session, email)).ended_at is None


async def test_rp_initiated_logout_confirmation_with_a_forged_csrf_token_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, email, _ = await _app_signed_in(client, db_session)
    page = await client.get(LOGOUT, params={"client_id": client_id, "post_logout_redirect_uri": BYE})
    assert page.status_code == 200
    for token in ("forged-token", ""):
        form = {
            "client_id": client_id,
            "post_logout_redirect_uri": BYE,
            "csrf_token": token,
            "logout": "confirm",
        }
        _refused_without_redirect(await client.post(LOGOUT, data=form))
    assert (await _browser_session(db_session, email)).ended_at is None


async def test_rp_initiated_logout_with_a_hint_for_another_user_asks_for_confirmation(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, first_email, tokens = await _app_signed_in(client, db_session)
    second_email = await signed_in_browser(client)  # the browser now holds another user's session
    page = await client.get(
        LOGOUT, params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE}
    )
    assert page.status_code == 200, page.text
    assert second_email in page.text and first_email not in page.text
    assert tokens["id_token"] not in page.text  # the form carries the client, not the hint
    assert (await _browser_session(db_session, second_email)).ended_at is None
    for name, value in (("client_id", client_id), ("post_logout_redirect_uri", BYE)):
        assert f'name="{name}" value="{value}"' in page.text


async def test_rp_initiated_logout_without_a_session_just_redirects(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session, post_logout_redirect_uris=[BYE]))["client_id"]
    response = await client.get(
        LOGOUT, params={"client_id": client_id, "post_logout_redirect_uri": BYE, "state": "a"}
    )
    assert (response.status_code, response.headers["location"]) == (303, f"{BYE}?state=a")
    assert (await client.get(LOGOUT)).headers["location"] == "/signed-out"


async def test_rp_initiated_logout_by_post_continues_as_a_get_that_carries_the_lax_cookie(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """RP-Initiated Logout §2 allows a form POST; a cross-site one does not carry the SameSite=Lax SSO
    cookie, so the endpoint answers it with the same request as a GET (no CSRF token asked of the RP)."""
    _, email, tokens = await _app_signed_in(client, db_session)
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": BYE,
        "state": "p",
        "extra": "x",
    }
    response = await client.post(LOGOUT, data=params)
    assert response.status_code == 303
    location = response.headers["location"]
    assert urlsplit(location).path == LOGOUT
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query == {name: params[name] for name in ("id_token_hint", "post_logout_redirect_uri", "state")}
    assert (await _browser_session(db_session, email)).ended_at is None
    followed = await client.get(location)
    assert followed.headers["location"] == f"{BYE}?state=p"
    assert (await _browser_session(db_session, email)).ended_at is not None


async def test_rp_initiated_logout_endpoint_is_in_discovery(client: httpx.AsyncClient, app: FastAPI) -> None:
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    assert metadata["end_session_endpoint"] == f"{app.state.settings.issuer}{LOGOUT}"
    assert (await client.get(LOGOUT)).status_code != 404


async def test_oidcc_id_token_hint_for_the_signed_in_user_with_prompt_none_succeeds(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, _, tokens = await _app_signed_in(client, db_session)
    query = await _prompt_none(client, client_id, id_token_hint=tokens["id_token"])
    assert "code" in query, query


async def test_oidcc_id_token_hint_for_another_user_is_login_required_or_shows_sign_in(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, first_email, tokens = await _app_signed_in(client, db_session)
    await signed_in_browser(client)  # another user in this browser
    query = await _prompt_none(client, client_id, id_token_hint=tokens["id_token"])
    assert (query["error"], query["state"]) == ("login_required", "state-123")

    params = authorize_params(client_id, pkce_pair()[1], id_token_hint=tokens["id_token"])
    response = await client.get(AUTHORIZE, params=params)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?")
    # Signing in as the hinted user gets the code.
    return_to = parse_qs(urlsplit(response.headers["location"]).query)["return_to"][0]
    signed_in = await sign_in(client, first_email, return_to=return_to)
    assert signed_in.status_code == 303
    assert "code" in location_query(await client.get(signed_in.headers["location"]))


async def test_oidcc_id_token_hint_that_is_forged_is_invalid_request(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id, _, tokens = await _app_signed_in(client, db_session)
    head, _, signature = tokens["id_token"].split(".")
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    forged = f"{head}.{_b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}"
    query = await _prompt_none(client, client_id, id_token_hint=forged)
    assert (query["error"], query["state"]) == ("invalid_request", "state-123")


async def test_rp_initiated_logout_refuses_a_parameter_given_twice_rfc6749_3_1(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Which of two return addresses or hints would count is not the server's to guess: an error page,
    no redirect, and the browser stays signed in."""
    _, email, tokens = await _app_signed_in(client, db_session)
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "s"}
    for name in ("id_token_hint", "post_logout_redirect_uri", "state"):
        _refused_without_redirect(await client.get(LOGOUT, params={**params, name: [params[name]] * 2}))
    assert (await _browser_session(db_session, email)).ended_at is None
    assert (await client.get(LOGOUT, params=params)).status_code == 303
