"""Fixtures for browser tests: the real app over real HTTP, and headless Chromium driving it.

`live_server` is pyauth (`create_app`, its lifespan, the test database) served by uvicorn on a free
loopback port, in a thread of its own, committing for real: users its tests create must use
LIVE_EMAIL_DOMAIN (`live_email()`), and are deleted after each test. `browser` is a headless Chromium on
that server; every page it shows is saved as a screenshot under `test-output/screenshots/<test>/` (next to
pyproject.toml; `make test` mounts it, so the host sees them). The window is DESKTOP unless a test
parametrizes `window` (e.g. with PHONE).

Speed: one Chromium per process (pytest-xdist worker), not one per test, and one server for the browser
tests that run one after the other in a process. Each test still starts from nothing: the browser forgets
its cookies, cache and the visited origins' storage, gets its window size again and a blank tab; the
server's clock is the test's `clock`; the test's users are deleted afterwards.

Without chromium and chromedriver (a host run) the browser tests are skipped, saying so; where
PYAUTH_BROWSER_REQUIRED=1 (the test image, `make test`) a missing browser fails them instead.
"""

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import ManualClock, SystemClock
from app.core.config import Settings
from app.keys.models import SigningKey
from app.main import create_app
from tests.browser.helpers import (
    BROWSER_REQUIRED,
    DESKTOP,
    Browser,
    SharedChromium,
    find_browser,
    fit_window,
    forget_everything,
    origins_of,
    served_in_thread,
    slug,
)
from tests.browser.virtual_authenticator import webauthn_settings
from tests.conftest import SwappedClock, delete_live_accounts, make_settings, rows_set_aside
from tests.servers import loopback_socket, url_of


@dataclass(frozen=True)
class LiveServer:
    """The running pyauth the browser talks to: its URL, settings and clock."""

    url: str
    settings: Settings
    clock: ManualClock


@dataclass(frozen=True)
class SharedServer:
    url: str
    settings: Settings
    clock: SwappedClock


@pytest.fixture(scope="package")
async def shared_live_server(engine: AsyncEngine) -> AsyncIterator[SharedServer]:
    """pyauth served for the browser tests that run one after another in this process."""
    table = SigningKey.__table__
    assert isinstance(table, Table)
    sock = loopback_socket()
    # Passkey pages are opened at localhost (no IP address is an RP id): see virtual_authenticator.
    settings = make_settings(PUBLIC_BASE_URL=url_of(sock), **webauthn_settings(url_of(sock)))
    clock = SwappedClock()
    # The app commits its first signing key at start: set the table's rows aside, as the resource tests do.
    async with rows_set_aside(engine, table):
        with served_in_thread(create_app(settings, clock=clock), sock) as url:
            yield SharedServer(url, settings, clock)


@pytest.fixture
async def live_server(
    shared_live_server: SharedServer, admin_engine: AsyncEngine, clock: ManualClock
) -> AsyncIterator[LiveServer]:
    """The shared server, on the test's clock; the users the test made are deleted afterwards."""
    shared_live_server.clock.current = clock
    try:
        yield LiveServer(shared_live_server.url, shared_live_server.settings, clock)
    finally:
        shared_live_server.clock.current = SystemClock()
        await delete_live_accounts(admin_engine)


@pytest.fixture
def window() -> tuple[int, int]:
    """The browser window's size; parametrize `window` (PHONE, DESKTOP) to change it."""
    return DESKTOP


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """The chromium binary and chromedriver: skipped without them, failed where they are required."""
    found = find_browser()
    if found is None:
        reason = (
            "no chromium and chromedriver here (apt-get install chromium chromium-driver, or run make test: "
            "the test image has them)"
        )
        if BROWSER_REQUIRED:
            pytest.fail(f"PYAUTH_BROWSER_REQUIRED=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def shared_chromium(chromium: tuple[str, str]) -> Iterator[SharedChromium]:
    with tempfile.TemporaryDirectory(prefix="pyauth-chromium-") as profile:
        shared = SharedChromium(*chromium, Path(profile))
        try:
            yield shared
        finally:
            shared.quit()


def screenshots_of(request: pytest.FixtureRequest) -> Path:
    """test-output/screenshots/<module>-<test>[-<params>]/, emptied of an earlier run's screenshots."""
    node = request.node
    screenshots = request.config.rootpath / "test-output" / "screenshots"
    folder = screenshots / slug(f"{node.module.__name__.rpartition('.')[2]}-{node.name}", 120)
    folder.mkdir(parents=True, exist_ok=True)
    # Written by the test image's user into a folder the host's user must be able to clear again.
    for made in (screenshots, folder):
        with contextlib.suppress(OSError):
            made.chmod(0o777)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
def browser(
    request: pytest.FixtureRequest,
    shared_chromium: SharedChromium,
    live_server: LiveServer,
    window: tuple[int, int],
) -> Iterator[Browser]:
    """Headless Chromium on `live_server`, as fresh as a new profile. A failed test's last page is saved
    too."""
    driver = shared_chromium.session()
    fit_window(driver, window)
    browser = Browser(driver, live_server.url, screenshots_of(request))
    failed_before = request.session.testsfailed
    try:
        yield browser
        if request.session.testsfailed > failed_before:
            with contextlib.suppress(WebDriverException):  # a browser that died has nothing to show
                browser.screenshot("failed")
    finally:
        try:
            forget_everything(driver, origins_of([live_server.url, *browser.requested_urls()]))
        except WebDriverException:
            shared_chromium.quit()  # the next test starts a new one
