"""Issue 11's acceptance in a real browser: a client registered as `make client` registers it, the demo app
(tests/demo/demo_app.py) signing in through pyauth, and headless Chromium as its user: signs up, signs in,
allows the third-party app on the consent page, lands on the demo signed in (its page shows the ID token's
email and an API answer verified by pyauth-resource), signs out through the demo (OpenID Connect
RP-Initiated Logout), and finds the SSO session ended.

The demo is served on `localhost` and pyauth on `127.0.0.1`: two sites, each with its own cookies, as an
app and its identity provider are in production."""

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clients import cli
from tests.auth.helpers import PASSWORD, live_email, register
from tests.browser.conftest import LiveServer
from tests.browser.helpers import PHONE, Browser, served_in_thread
from tests.demo.demo_app import DemoSettings, create_demo_app
from tests.servers import loopback_socket

DEMO_NAME = "pyauth demo"  # as the consent page shows it


@dataclass(frozen=True)
class Demo:
    url: str
    name: str
    client_id: str


async def registered_like_make_client(live_server: LiveServer, name: str, demo_url: str) -> tuple[str, str]:
    """`make client ARGS='create …'` for the demo, through the CLI's own code (`app.clients.cli.run`, in
    this process: a process start would cost a second); its client_id and the secret it printed once."""
    args = cli.parser().parse_args(
        [
            "create",
            "--name", name,
            "--redirect-uri", f"{demo_url}/callback",
            "--post-logout-redirect-uri", f"{demo_url}/signed-out",
            "--scope", "openid",
            "--scope", "email",
        ]
    )  # fmt: skip
    out = io.StringIO()
    await cli.run(live_server.settings, args, out)
    [client_id] = re.findall(r"^client_id:\s+(\S+)$", out.getvalue(), re.MULTILINE)
    [secret] = re.findall(r"^client_secret:\s+(\S+)$", out.getvalue(), re.MULTILINE)
    return client_id, secret


@pytest.fixture
async def demo(live_server: LiveServer, admin_engine: AsyncEngine) -> AsyncIterator[Demo]:
    """The demo app as a confidential, third-party client (so the consent page shows), served on
    `localhost`; the client and its audit rows are deleted afterwards."""
    sock = loopback_socket()
    url = f"http://localhost:{sock.getsockname()[1]}"
    client_id, secret = await registered_like_make_client(live_server, DEMO_NAME, url)
    try:
        settings = DemoSettings(
            issuer=live_server.url, client_id=client_id, client_secret=secret, base_url=url
        )
        with served_in_thread(create_demo_app(settings), sock):
            yield Demo(url, DEMO_NAME, client_id)
    finally:
        async with admin_engine.begin() as connection:
            found = {"client_id": client_id}
            await connection.execute(
                text("DELETE FROM audit_events WHERE details->>'client_id' = :client_id"), found
            )
            await connection.execute(text("DELETE FROM oauth_clients WHERE client_id = :client_id"), found)


def discovery(live_server: LiveServer) -> dict[str, Any]:
    metadata: dict[str, Any] = httpx.get(f"{live_server.url}/.well-known/openid-configuration").json()
    return metadata


async def registered_user(live_server: LiveServer, prefix: str) -> str:
    email = live_email(prefix)
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        assert (await register(client, email)).status_code == 201
    return email


def sign_in_on_pyauth(browser: Browser, email: str) -> None:
    """On pyauth's sign-in page: the email and password, then "Sign in"."""
    assert browser.title == "Sign in · pyauth", browser.path
    browser.fill("Email address", email)
    browser.fill("Password", PASSWORD)
    browser.press("Sign in")


def assert_signed_in_on_the_demo(browser: Browser, demo: Demo, email: str) -> None:
    assert browser.driver.current_url == f"{demo.url}/"
    assert browser.title == "Signed in · pyauth demo"
    assert browser.wait_for("#email").text == email  # from the validated ID token
    assert browser.wait_for("#api-status").text == "200"  # the API took the access token
    assert f'"client_id":"{demo.client_id}"' in browser.wait_for("#api-answer").text


def assert_only_the_two_apps_were_asked(browser: Browser, demo: Demo) -> None:
    assert [url for url in browser.foreign_requests() if not url.startswith(f"{demo.url}/")] == []


async def test_chromium_signs_up_signs_in_and_consents_then_lands_on_the_demo_signed_in(
    browser: Browser, live_server: LiveServer, demo: Demo
) -> None:
    browser.visit(f"{demo.url}/")
    assert browser.title == "Welcome · pyauth demo"

    # To pyauth's sign-in page (the authorization request waits in return_to), and on to sign up.
    browser.follow("Sign in with pyauth")
    assert browser.path.startswith("/signin?return_to=%2Foauth2%2Fauthorize"), browser.path
    browser.follow("Create an account")
    assert browser.title == "Create your account · pyauth"
    email = live_email("journey")
    browser.fill("Email address", email)
    browser.fill("Password", PASSWORD)
    browser.press("Create account")
    assert browser.title == "Check your mail · pyauth"

    # Sign in with the new account: the consent page of the third-party app comes next.
    browser.follow("Sign in")
    sign_in_on_pyauth(browser, email)
    assert browser.title == "Allow access · pyauth"
    consent = browser.wait_for("main").text
    assert demo.name in consent
    assert email in consent
    browser.press("Allow")

    assert_signed_in_on_the_demo(browser, demo, email)
    assert_only_the_two_apps_were_asked(browser, demo)


async def test_signing_out_of_the_demo_ends_the_sso_session(
    browser: Browser, live_server: LiveServer, demo: Demo
) -> None:
    """OpenID Connect RP-Initiated Logout 1.0: the demo sends the browser to the end_session_endpoint with
    its ID token as id_token_hint; pyauth ends the SSO session and returns to the registered
    post_logout_redirect_uri with the state. Signing in again then needs the password again."""
    assert "end_session_endpoint" in discovery(live_server)
    email = await registered_user(live_server, "signout")
    browser.visit(f"{demo.url}/login")
    sign_in_on_pyauth(browser, email)
    browser.press("Allow")
    assert_signed_in_on_the_demo(browser, demo, email)

    browser.press("Sign out")
    assert browser.driver.current_url.startswith(f"{demo.url}/signed-out?state="), browser.driver.current_url
    assert browser.title == "Signed out · pyauth demo"

    # The SSO session is over: the demo's sign-in shows pyauth's sign-in page, no automatic return.
    browser.follow("Sign in again")
    assert browser.path.startswith("/signin?"), browser.driver.current_url
    assert browser.title == "Sign in · pyauth"
    assert_only_the_two_apps_were_asked(browser, demo)


@pytest.mark.parametrize("window", [pytest.param(PHONE, id="phone")])
async def test_the_sign_in_and_consent_pages_fit_a_phone(
    browser: Browser, live_server: LiveServer, demo: Demo
) -> None:
    email = await registered_user(live_server, "phone")
    browser.visit(f"{demo.url}/login")
    assert browser.title == "Sign in · pyauth"
    assert browser.fits_the_width()
    sign_in_on_pyauth(browser, email)
    assert browser.title == "Allow access · pyauth"
    assert browser.fits_the_width()
    assert browser.button("Allow").is_displayed()
    browser.press("Allow")
    assert_signed_in_on_the_demo(browser, demo, email)
