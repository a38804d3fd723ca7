"""Issue 12: the account security page in a real browser. Chromium signs in with the password, adds a
passkey through the page's own script (`passkey-register.js`) with WebDriver's virtual authenticator (W3C
WebAuthn §11: CTAP2, internal transport, resident keys and user verification), sets up the authenticator
app by reading the secret off the page (the code computed with pyotp), sees the recovery codes, signs out,
signs in with the passkey it added (no password), signs out, and signs in again with the password and the
app's code on the second page.

WebAuthn needs a secure context and a domain as the RP id (never an IP address): the pages are opened
at `http://localhost:<port>`, as the shared browser tests' server allows (see
tests/browser/virtual_authenticator.py).
"""

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.clock import ManualClock
from tests.auth.helpers import PASSWORD, live_email, signed_up
from tests.browser.conftest import LiveServer
from tests.browser.helpers import PHONE, Browser
from tests.browser.virtual_authenticator import localhost_url, virtual_authenticator
from tools.screenshots import capture


@pytest.fixture
def on_localhost(browser: Browser, live_server: LiveServer) -> Browser:
    """The browser pointed at the shared pyauth as `http://localhost:<port>` (its WebAuthn origin)."""
    browser.base_url = localhost_url(live_server.url)
    return browser


@pytest.fixture
def authenticator(on_localhost: Browser) -> Iterator[None]:
    """A platform authenticator (resident keys, user verification), removed after the test."""
    with virtual_authenticator(on_localhost.driver):
        yield


async def test_adding_a_passkey_and_an_authenticator_app_on_the_security_page_then_signing_in_with_it(
    on_localhost: Browser, authenticator: None, clock: ManualClock, engine: AsyncEngine
) -> None:
    browser = on_localhost
    async with httpx.AsyncClient(base_url=browser.base_url) as client:
        email, _ = await signed_up(client, live_email("security"))

    browser.visit("/account/security")
    assert browser.path == "/signin?return_to=%2Faccount%2Fsecurity"
    browser.fill("Email address", email)
    browser.fill("Password", PASSWORD)
    browser.press("Sign in")
    assert browser.title == "Account security · pyauth"

    # A passkey, through the page script and the virtual authenticator.
    browser.wait_for("#passkey-add")  # shown by the script: this browser has WebAuthn
    assert not browser.driver.find_element(By.ID, "passkey-unsupported").is_displayed()
    browser.fill("Name of the new passkey", "Test laptop")
    browser.press("Add a passkey")
    assert browser.path == "/account/security?done=passkey_added"
    assert "The passkey was added." in browser.driver.page_source
    names = [str(e.text) for e in browser.driver.find_elements(By.CSS_SELECTOR, ".passkey-name")]
    assert names == ["Test laptop"]
    [credential] = browser.driver.get_credentials()
    assert credential.is_resident_credential
    assert credential.rp_id == "localhost"
    async with AsyncSession(engine) as db:
        stored = await db.scalar(
            text("SELECT credential_id FROM passkeys JOIN users ON users.id = user_id WHERE email = :e"),
            {"e": email},
        )
    assert stored == base64.urlsafe_b64decode(credential.id)  # Selenium gives it padded base64url

    # The authenticator app: the secret read off the page, the code computed from it.
    browser.press("Set up an authenticator app")
    assert browser.driver.find_element(By.CSS_SELECTOR, ".qr-code svg").is_displayed()
    secret = str(browser.driver.find_element(By.ID, "totp-secret").text)
    browser.fill("Code", pyotp.TOTP(secret).at(clock.now()))
    browser.press("Turn on")
    assert browser.title == "Your recovery codes · pyauth"
    codes = browser.driver.find_elements(By.CSS_SELECTOR, ".recovery-codes code")
    assert len(codes) == 10
    browser.follow("I have saved them")
    assert "10 recovery codes left." in browser.driver.page_source
    assert browser.foreign_requests() == []

    # Out, and in again with the passkey just added, without the password.
    browser.visit("/account")
    browser.press("Sign out")
    browser.visit("/signin?return_to=%2Faccount%2Fsecurity", wait_for="form[action='/signin/passkey'] button")
    browser.press("Sign in with a passkey")
    assert browser.title == "Account security · pyauth", browser.path
    assert "last used" in browser.driver.page_source  # the passkey's use is recorded

    # Out, and in again with the password and the app's next code on the second page.
    browser.visit("/account")
    browser.press("Sign out")
    clock.advance(timedelta(seconds=30))  # the confirmation spent the current code
    browser.visit("/signin?return_to=%2Faccount%2Fsecurity")
    browser.fill("Email address", email)
    browser.fill("Password", PASSWORD)
    browser.press("Sign in")
    assert browser.title == "Enter the code from your authenticator app · pyauth"
    browser.fill("Code", pyotp.TOTP(secret).at(clock.now()))
    browser.press("Continue")
    assert browser.title == "Account security · pyauth"
    assert "On since" in browser.driver.page_source


async def test_the_screenshots_tool_captures_the_security_page_at_phone_width(
    on_localhost: Browser, authenticator: None, clock: ManualClock, tmp_path: Path
) -> None:
    """`tools/screenshots.py` (the README's picture of the page) runs its steps on this browser."""
    browser = on_localhost
    async with httpx.AsyncClient(base_url=browser.base_url) as client:
        email, _ = await signed_up(client, live_email("shots"))
    saved = capture(
        browser.driver,
        browser.base_url,
        tmp_path,
        email=email,
        password=PASSWORD,
        window=PHONE,
        now=clock.now,
    )
    assert [path.name for path in saved] == [
        "account-security.png",
        "account-security-totp.png",
        "account-security-codes.png",
        "account-security-done.png",
    ]
    for path in saved:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert browser.fits_the_width()


async def test_without_webauthn_in_the_browser_the_add_passkey_form_stays_hidden(
    on_localhost: Browser, clock: ManualClock
) -> None:
    """Progressive enhancement: a browser without `window.PublicKeyCredential` (played by removing it
    before any page script runs) is told it cannot create passkeys and gets no button that would fail."""
    browser = on_localhost
    async with httpx.AsyncClient(base_url=browser.base_url) as client:
        email, _ = await signed_up(client, live_email("nowebauthn"))
    added = browser.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.PublicKeyCredential;"}
    )
    try:
        browser.visit("/signin?return_to=%2Faccount%2Fsecurity")
        browser.fill("Email address", email)
        browser.fill("Password", PASSWORD)
        browser.press("Sign in")
        assert browser.title == "Account security · pyauth"
        assert browser.wait_for("#passkey-unsupported").text == "This browser cannot create passkeys."
        assert not browser.driver.find_element(By.ID, "passkey-add").is_displayed()
        assert browser.button("Set up an authenticator app").is_displayed()  # the rest works without it
    finally:
        browser.driver.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}
        )
