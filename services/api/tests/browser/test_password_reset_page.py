"""The mailed password-reset link in a real browser: its page shows a labelled form, the new password goes
through that form, and the API then takes the new password and refuses the old one."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.account.helpers import last_mail_to
from tests.auth.helpers import PASSWORD, fresh_password, live_email, password_grant, register
from tests.browser.conftest import LiveServer
from tests.browser.helpers import DESKTOP, PHONE, Browser


@pytest.mark.parametrize("window", [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")])
async def test_the_mailed_reset_link_sets_a_new_password_through_its_form(
    browser: Browser, live_server: LiveServer, engine: AsyncEngine
) -> None:
    email = live_email("reset")
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        assert (await register(client, email)).status_code == 201
        forgot = await client.post("/auth/password/forgot", json={"email": email})
        assert forgot.status_code == 202
    async with AsyncSession(engine) as db:
        mail = await last_mail_to(db, email, "reset_password")
    assert mail.link.startswith(f"{live_server.url}/auth/password/reset?token=")

    browser.visit(mail.link)
    assert browser.title == "Choose a new password · pyauth"  # the page, then the brand (BRAND_NAME)
    new_password = fresh_password()
    browser.fill("New password", new_password)
    browser.press("Set password")
    assert browser.title == "Password changed · pyauth"
    assert browser.foreign_requests() == []

    async with httpx.AsyncClient(base_url=live_server.url) as client:
        assert (await password_grant(client, email, PASSWORD)).status_code == 400
        assert (await password_grant(client, email, new_password)).status_code == 200
