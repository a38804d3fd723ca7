"""/docs in a real browser, on a host with no internet: Swagger UI comes from pyauth itself, and its
Authorize button signs in through the password flow and calls the API with the token (issue 10, item 11)."""

import httpx
import pytest
from selenium.common.exceptions import WebDriverException

from app.core.security import DOCS_ASSETS_PATH
from tests.auth.helpers import PASSWORD, live_email, register
from tests.browser.conftest import LiveServer
from tests.browser.helpers import Browser

ME = '.opblock-get:has(.opblock-summary-path[data-path="/users/me"])'


async def test_docs_render_offline_and_authorize_signs_in_with_the_password_flow(
    browser: Browser, live_server: LiveServer
) -> None:
    email = live_email("docs")
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        assert (await register(client, email)).status_code == 201

    browser.visit("/docs", wait_for=".swagger-ui .info .title")
    assert "pyauth" in browser.wait_for(".swagger-ui .info .title").text

    # Authorize opens the dialog of the OAuth2 password flow.
    browser.wait_for(".scheme-container button.authorize").click()
    dialog = browser.wait_for(".dialog-ux .modal-ux")
    browser.screenshot("authorize dialog")
    dialog.find_element("css selector", "#oauth_username").send_keys(email)
    dialog.find_element("css selector", "#oauth_password").send_keys(PASSWORD)
    dialog.find_element("css selector", ".auth-btn-wrapper button.authorize").click()
    browser.wait_until(
        lambda: any(b.text == "Logout" for b in dialog.find_elements("css selector", "button")),
        "the dialog says the user is authorized",
    )
    browser.screenshot("authorized")
    dialog.find_element("css selector", "button.btn-done").click()

    # "Try it out" on GET /users/me sends the token Swagger UI got: 200, the user's own account.
    browser.wait_for(f"{ME} .opblock-summary").click()
    browser.wait_for(f"{ME} button.try-out__btn").click()
    browser.wait_for(f"{ME} button.execute").click()
    status = browser.show(browser.wait_for(f"{ME} .live-responses-table tbody .response-col_status"))
    browser.screenshot("users me answered")
    assert status.text.strip() == "200"
    assert email in browser.wait_for(f"{ME} .live-responses-table tbody .response-col_description").text

    # Everything came from pyauth: its own Swagger UI assets, and not one request to anywhere else.
    assert any(url.startswith(f"{live_server.url}{DOCS_ASSETS_PATH}/") for url in browser.requested_urls())
    assert browser.foreign_requests() == []


def test_the_test_browser_reaches_nothing_but_loopback(browser: Browser) -> None:
    """What makes the test above prove "offline": a CDN's name resolves to nothing, an address outside
    the host is unreachable, and the request log sees both attempts."""
    for url in ("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css", "http://192.0.2.1/"):
        with pytest.raises(WebDriverException, match="ERR_"):
            browser.driver.get(url)
    assert set(browser.foreign_requests()) == {  # Chromium may retry a failed navigation
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css",
        "http://192.0.2.1/",
    }
