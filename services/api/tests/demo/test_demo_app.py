"""The demo app (tests/demo/demo_app.py) against the real pyauth, both spoken to in process over httpx: the
code flow with PKCE as a confidential and as a public client ends signed in with a validated ID token and
an API call verified by pyauth-resource, and an answer the demo did not ask for is refused. The same app in
Chromium, with the consent page and sign-out: tests/browser/test_demo_journey.py."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send

from tests.auth.helpers import PASSWORD, signed_up
from tests.demo.demo_app import DemoSettings, create_demo_app
from tests.oidc.helpers import code_flow_client
from tests.servers import LOOPBACK_TLS
from tests.web.helpers import csrf_token_of

DEMO = "http://127.0.0.1:8001"


@asynccontextmanager
async def demo_and_browser(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession, client_type: str
) -> AsyncIterator[tuple[DemoSettings, httpx.AsyncClient]]:
    """The demo registered as a first-party client of `client_type`, and a "browser" (an httpx client
    with cookies) that reaches pyauth at its issuer and the demo at DEMO; the demo reaches both the same
    way."""
    issuer = str(app.state.settings.issuer)
    registered = await code_flow_client(
        client,
        db_session,
        type=client_type,
        redirect_uris=[f"{DEMO}/callback"],
        post_logout_redirect_uris=[f"{DEMO}/signed-out"],
    )
    settings = DemoSettings(
        issuer=issuer,
        client_id=registered["client_id"],
        client_secret=registered.get("client_secret"),
        base_url=DEMO,
    )
    demos: list[FastAPI] = []

    async def demo(scope: Scope, receive: Receive, send: Send) -> None:
        await demos[0](scope, receive, send)  # made below: it needs the client that reaches it

    mounts = {issuer: httpx.ASGITransport(app=app), DEMO: httpx.ASGITransport(app=demo)}
    # Every URL they reach is mounted; the shared TLS context spares each client loading the CA bundle.
    async with (
        httpx.AsyncClient(mounts=mounts, verify=LOOPBACK_TLS) as demo_http,
        httpx.AsyncClient(mounts=mounts, verify=LOOPBACK_TLS) as browser,
    ):
        demos.append(create_demo_app(settings, http=demo_http))
        yield settings, browser


async def sign_in_through_the_demo(browser: httpx.AsyncClient, email: str) -> httpx.Response:
    """The demo's sign-in link, pyauth's sign-in form, and every redirect after it, back to the demo."""
    signin_page = await browser.get(f"{DEMO}/login", follow_redirects=True)
    assert signin_page.url.path == "/signin", signin_page.url
    return_to = parse_qs(signin_page.url.query.decode())["return_to"][0]
    form = {
        "email": email,
        "password": PASSWORD,
        "csrf_token": csrf_token_of(signin_page),
        "return_to": return_to,
    }
    return await browser.post(signin_page.url.copy_with(query=None), data=form, follow_redirects=True)


@pytest.mark.parametrize("client_type", ["confidential", "public"])
async def test_demo_app_signs_in_with_pkce_and_its_api_accepts_the_access_token(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession, client_type: str
) -> None:
    email, _ = await signed_up(client)
    async with demo_and_browser(app, client, db_session, client_type) as (settings, browser):
        home = await sign_in_through_the_demo(browser, email)
    assert str(home.url) == f"{DEMO}/", home.text
    assert home.status_code == 200
    assert f'<strong id="email">{email}</strong>' in home.text  # from the validated ID token
    assert '<span id="api-status">200</span>' in home.text  # pyauth-resource took the access token
    assert f"&quot;client_id&quot;:&quot;{settings.client_id}&quot;" in home.text


async def test_demo_app_refuses_an_answer_whose_state_is_not_its_sign_ins(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """RFC 6749 §10.12: a code pushed into the demo's callback by someone else (login CSRF) is refused."""
    async with demo_and_browser(app, client, db_session, "public") as (settings, browser):
        await browser.get(f"{DEMO}/login")
        answer = await browser.get(
            f"{DEMO}/callback", params={"code": "a-code", "state": "another-state", "iss": settings.issuer}
        )
    assert answer.status_code == 400
    assert "the answer&#x27;s state is not this sign-in&#x27;s" in answer.text


async def test_demo_app_refuses_an_answer_naming_another_issuer_rfc9207(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """RFC 9207 §2.4: the `iss` of the answer must be the issuer the demo sent the user to (mix-up)."""
    async with demo_and_browser(app, client, db_session, "public") as (_, browser):
        to_pyauth = await browser.get(f"{DEMO}/login")
        state = _query(to_pyauth.headers["location"])["state"]
        answer = await browser.get(
            f"{DEMO}/callback", params={"code": "a-code", "state": state, "iss": "https://idp.example.com"}
        )
    assert answer.status_code == 400
    assert "the answer comes from another issuer" in answer.text


async def test_demo_api_answers_401_with_a_bearer_challenge_without_a_valid_token_rfc6750(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    async with demo_and_browser(app, client, db_session, "public") as (_, browser):
        missing = await browser.get(f"{DEMO}/api/me")
        forged = await browser.get(f"{DEMO}/api/me", headers={"Authorization": "Bearer not.a.token"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]


def _query(url: str) -> dict[str, Any]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
