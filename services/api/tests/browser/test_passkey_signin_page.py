"""Issue 12: signing in with a passkey in a real Chromium, whose WebDriver virtual authenticator holds a
resident credential that was registered with pyauth through its API (tests/browser/virtual_authenticator.py).
The page's own script (static/passkey-signin.js) asks pyauth for the options, lets the authenticator sign,
and posts the answer: passwordless from the sign-in page's "Sign in with a passkey", and as the second step
after the password. The pages are opened at localhost, an RP id WebAuthn accepts."""

import uuid
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver import Chrome
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.auth.helpers import PASSWORD, live_email, signed_up
from tests.browser.conftest import LiveServer
from tests.browser.helpers import Browser
from tests.browser.virtual_authenticator import (
    Passkey,
    load_passkey,
    localhost_url,
    registered_passkey,
    stored_credential_ids,
    virtual_authenticator,
)
from tests.mfa.helpers import claims_of


@pytest.fixture
def authenticator(browser: Browser, live_server: LiveServer) -> Iterator[Chrome]:
    """The browser, at localhost, with a virtual platform authenticator (removed after the test)."""
    browser.base_url = localhost_url(live_server.url)
    with virtual_authenticator(browser.driver) as driver:
        yield driver


async def user_with_passkey(live_server: LiveServer, name: str) -> tuple[str, uuid.UUID, Passkey]:
    """A new account (password, and a passkey registered through the API: its only second factor)."""
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        email, tokens = await signed_up(client, live_email(name))
        passkey = await registered_passkey(client, tokens, origin=localhost_url(live_server.url))
    return email, uuid.UUID(claims_of(tokens.access)["sub"]), passkey


async def live_session_amr(engine: AsyncEngine, user_id: uuid.UUID) -> list[str] | None:
    async with AsyncSession(engine) as db:
        amr: list[str] | None = await db.scalar(
            text("SELECT amr FROM browser_sessions WHERE user_id = :u AND ended_at IS NULL"), {"u": user_id}
        )
    return amr


async def test_a_passkey_signs_in_without_a_password_from_the_sign_in_page(
    browser: Browser, authenticator: Chrome, live_server: LiveServer, engine: AsyncEngine
) -> None:
    email, user_id, passkey = await user_with_passkey(live_server, "passwordless")
    load_passkey(authenticator, passkey)
    assert stored_credential_ids(authenticator) == [passkey.credential_id]

    browser.visit("/signin", wait_for="form[action='/signin/passkey'] button")
    browser.press("Sign in with a passkey")
    assert browser.title == "Your account · pyauth", browser.path
    assert email in browser.driver.page_source
    assert browser.foreign_requests() == []
    assert await live_session_amr(engine, user_id) == ["hwk", "user", "mfa"]


async def test_a_password_then_the_passkey_as_second_step_signs_in(
    browser: Browser, authenticator: Chrome, live_server: LiveServer, engine: AsyncEngine
) -> None:
    email, user_id, passkey = await user_with_passkey(live_server, "second-step")
    load_passkey(authenticator, passkey)

    browser.visit("/signin")
    browser.fill("Email address", email)
    browser.fill("Password", PASSWORD)
    browser.press("Sign in")
    assert browser.title == "Confirm with your passkey · pyauth"
    browser.press("Use your passkey")
    assert browser.title == "Your account · pyauth", browser.path
    assert await live_session_amr(engine, user_id) == ["pwd", "hwk", "mfa"]


async def test_without_a_matching_passkey_the_page_says_so_and_stays(
    browser: Browser, authenticator: Chrome, live_server: LiveServer, engine: AsyncEngine
) -> None:
    """The authenticator holds no credential for pyauth: the browser's get() fails, and the page shows its
    message instead of going anywhere."""
    _, user_id, _ = await user_with_passkey(live_server, "no-credential")
    browser.visit("/signin", wait_for="form[action='/signin/passkey'] button")
    browser.press("Sign in with a passkey", navigates=False)
    message = browser.wait_for("[data-passkey-failed]", timeout=30)
    assert "could not be used" in message.text
    browser.screenshot("passkey refused")
    assert browser.title == "Sign in · pyauth"
    assert await live_session_amr(engine, user_id) is None
