"""Screenshots of the account security page of a running pyauth, for the README and for review.

    python tools/screenshots.py --base-url http://localhost:8000 [--out docs/screenshots] [--phone]

Registers a demo account (`demo-<random>@example.org`, a random passphrase; `--email`/`--password` use an
existing one instead), then drives headless Chromium (`chromium` and `chromedriver` on PATH, or
`--chromium`/`--chromedriver`) with WebDriver's virtual authenticator: signs in on `/signin`, opens
`/account/security`, adds a passkey through the page's own script, sets up the authenticator app (the
code computed from the secret the page shows), and saves a PNG of each page into `--out`:
`account-security.png`, `account-security-totp.png`, `account-security-codes.png`,
`account-security-done.png`. The demo account stays; remove it with `make admin` if it should not.

WebAuthn runs only in a secure context on a domain: `--base-url` must be `https://…` or
`http://localhost:<port>` (not `127.0.0.1`), and the server's WEBAUTHN_RP_ID/WEBAUTHN_ORIGINS must match it
(the defaults follow PUBLIC_BASE_URL).
"""

import argparse
import json
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyotp
from selenium.common.exceptions import WebDriverException
from selenium.webdriver import Chrome, ChromeOptions, ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import (
    Protocol,
    Transport,
    VirtualAuthenticatorOptions,
)
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

PHONE = (390, 844)
DESKTOP = (1280, 900)
WAIT_SECONDS = 10


def _now() -> datetime:
    return datetime.now(UTC)


def register(base_url: str, email: str, password: str) -> None:
    """`POST /auth/register` (JSON), as a new user would."""
    request = urllib.request.Request(  # noqa: S310 - the operator's own pyauth
        f"{base_url}/auth/register",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        if response.status != 201:
            raise SystemExit(f"registration answered {response.status}")


def start_chromium(chromium: str, chromedriver: str) -> Chrome:
    options = ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    return Chrome(options=options, service=ChromeService(executable_path=chromedriver))


def add_virtual_authenticator(driver: Chrome) -> None:
    """A platform authenticator with resident keys whose user verification always succeeds."""
    driver.add_virtual_authenticator(
        VirtualAuthenticatorOptions(
            protocol=Protocol.CTAP2,
            transport=Transport.INTERNAL,
            has_resident_key=True,
            has_user_verification=True,
            is_user_verified=True,
        )
    )


class Pages:
    """The few steps the screenshots need, on one WebDriver session."""

    def __init__(self, driver: Chrome, base_url: str) -> None:
        self.driver, self.base_url = driver, base_url.rstrip("/")

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def _wait(self, css: str) -> WebElement:
        def shown(driver: Chrome) -> WebElement | Literal[False]:
            found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
            return found[0] if found else False

        return WebDriverWait(self.driver, WAIT_SECONDS).until(shown)

    def fill(self, field_id: str, value: str) -> None:
        field = self._wait(f"#{field_id}")
        field.clear()
        field.send_keys(value)

    def submit(self, css: str) -> None:
        """Click the button `css` names and wait for the page it leads to."""
        before = self.driver.find_element(By.TAG_NAME, "html")
        self._wait(css).click()

        def replaced(_: Chrome) -> bool:
            try:
                before.is_enabled()
            except WebDriverException:  # stale: the page was replaced
                return True
            return False

        WebDriverWait(self.driver, WAIT_SECONDS).until(replaced)

    def text_of(self, css: str) -> str:
        return str(self._wait(css).text)

    def save(self, out: Path, name: str) -> Path:
        """The whole page (its full height) as `out/name.png`."""
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        width = int(self.driver.execute_script("return window.innerWidth"))
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        target = out / f"{name}.png"
        if not self.driver.save_screenshot(str(target)):
            raise SystemExit(f"no screenshot could be saved to {target}")
        return target


def capture(
    driver: Chrome,
    base_url: str,
    out: Path,
    *,
    email: str,
    password: str,
    window: tuple[int, int] = DESKTOP,
    now: Callable[[], datetime] = _now,
) -> list[Path]:
    """Sign `email` in, add a passkey and the authenticator app on the security page, and save the pages.
    The driver must have a virtual authenticator (`add_virtual_authenticator`). `now` is the server's
    time, for the TOTP code."""
    out.mkdir(parents=True, exist_ok=True)
    pages = Pages(driver, base_url)

    def fit() -> None:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": window[0] < 600},
        )

    fit()
    pages.open("/signin?return_to=%2Faccount%2Fsecurity")
    pages.fill("email", email)
    pages.fill("password", password)
    pages.submit("form[action='/signin'] button[type=submit]")
    pages.fill("passkey-name", "Laptop")
    pages.submit("#passkey-add button[type=submit]")
    pages.text_of(".passkey-name")
    saved = [pages.save(out, "account-security")]
    fit()
    pages.submit("form[action='/account/security/totp'] button")
    secret = pages.text_of("#totp-secret")
    saved.append(pages.save(out, "account-security-totp"))
    fit()
    pages.fill("code", pyotp.TOTP(secret).at(now()))
    pages.submit("form[action='/account/security/totp/confirm'] button")
    pages.text_of(".recovery-codes")
    saved.append(pages.save(out, "account-security-codes"))
    fit()
    pages.open("/account/security")
    pages.text_of("#totp-status")
    saved.append(pages.save(out, "account-security-done"))
    fit()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base-url", default="http://localhost:8000")
    parser.add_argument("--out", type=Path, default=Path("test-output/screenshots/account-security"))
    parser.add_argument("--email", help="an existing account (default: register a demo account)")
    parser.add_argument("--password")
    parser.add_argument("--phone", action="store_true", help=f"a phone's viewport ({PHONE[0]}x{PHONE[1]})")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver"))
    args = parser.parse_args(argv)
    if not args.chromium or not args.chromedriver:
        parser.error("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    base_url = args.base_url.rstrip("/")
    email, password = args.email, args.password
    if email is None:
        email = f"demo-{secrets.token_hex(4)}@example.org"
        password = secrets.token_urlsafe(18)
        register(base_url, email, password)
        print(f"registered {email}")
    elif password is None:
        parser.error("--email needs --password")
    driver = start_chromium(args.chromium, args.chromedriver)
    try:
        add_virtual_authenticator(driver)
        saved = capture(
            driver,
            base_url,
            args.out,
            email=email,
            password=password,
            window=PHONE if args.phone else DESKTOP,
        )
    finally:
        driver.quit()
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
