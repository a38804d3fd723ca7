"""Issue 12: the hosted sign-in with password + TOTP in a real browser. After the password the second page
asks for the code from the authenticator app (computed here with pyotp from the enrolled secret); the code
signs the browser in, with `otp` and `mfa` in the browser session's `amr` (RFC 8176)."""

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.mfa import totp
from tests.auth.helpers import PASSWORD, live_email
from tests.browser.conftest import LiveServer
from tests.browser.helpers import DESKTOP, PHONE, Browser
from tests.mfa.helpers import enrolled


@pytest.mark.parametrize("window", [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")])
async def test_signing_in_with_password_and_totp_through_the_second_page(
    browser: Browser, live_server: LiveServer, engine: AsyncEngine
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        user = await enrolled(client, live_server.clock, live_email("totp"))

    browser.visit("/signin")
    browser.fill("Email address", user.email)
    browser.fill("Password", PASSWORD)
    browser.press("Sign in")
    assert browser.title == "Enter the code from your authenticator app · pyauth"
    browser.fill("Code", "000000" if totp.code_at(user.secret, live_server.clock.now()) != "000000" else "1")
    browser.press("Continue")
    assert (
        browser.title == "Enter the code from your authenticator app · pyauth"
    )  # shown again, with the error
    assert browser.wait_for("#code-error").text
    browser.fill("Code", totp.code_at(user.secret, live_server.clock.now()))
    browser.press("Continue")
    assert browser.title == "Your account · pyauth"
    assert browser.foreign_requests() == []

    async with AsyncSession(engine) as db:
        amr = await db.scalar(
            text("SELECT amr FROM browser_sessions WHERE user_id = :u AND ended_at IS NULL"),
            {"u": user.user_id},
        )
    assert amr == ["pwd", "otp", "mfa"]
