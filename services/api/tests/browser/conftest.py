"""Fixtures for browser tests: the real app over real HTTP, and headless Chromium driving it.

`live_server` is pyauth (`create_app`, its lifespan, the test database) served by uvicorn on a free
loopback port, in a thread of its own, committing for real: users its tests create must use
LIVE_EMAIL_DOMAIN (`live_email()`), and are deleted afterwards. `browser` is a fresh Chromium session (no
cookies, its own profile) on that server; every page it shows is saved as a screenshot under
`test-output/screenshots/<test>/` (next to pyproject.toml; `make test` mounts it, so the host sees them).
The window is DESKTOP unless a test parametrizes `window` (e.g. with PHONE).

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

from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.models import SigningKey
from app.main import create_app
from tests.browser.helpers import (
    BROWSER_REQUIRED,
    DESKTOP,
    Browser,
    chromium_session,
    find_browser,
    served_in_thread,
    slug,
)
from tests.conftest import delete_live_accounts, make_settings, rows_set_aside
from tests.servers import loopback_socket, url_of


@dataclass(frozen=True)
class LiveServer:
    """The running pyauth the browser talks to: its URL, settings and clock."""

    url: str
    settings: Settings
    clock: ManualClock


@pytest.fixture
async def live_server(engine: AsyncEngine, clock: ManualClock) -> AsyncIterator[LiveServer]:
    table = SigningKey.__table__
    assert isinstance(table, Table)
    sock = loopback_socket()
    settings = make_settings(PUBLIC_BASE_URL=url_of(sock))
    # The app commits its first signing key at start: set the table's rows aside, as the resource tests do.
    async with rows_set_aside(engine, table):
        try:
            with served_in_thread(create_app(settings, clock=clock), sock) as url:
                yield LiveServer(url, settings, clock)
        finally:
            await delete_live_accounts(engine)


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
    chromium: tuple[str, str],
    live_server: LiveServer,
    window: tuple[int, int],
) -> Iterator[Browser]:
    """A fresh headless Chromium session on `live_server`. A failed test's last page is saved too."""
    with (
        tempfile.TemporaryDirectory(prefix="pyauth-chromium-") as profile,
        chromium_session(*chromium, window, Path(profile)) as driver,
    ):
        browser = Browser(driver, live_server.url, screenshots_of(request))
        failed_before = request.session.testsfailed
        yield browser
        if request.session.testsfailed > failed_before:
            with contextlib.suppress(WebDriverException):  # a browser that died has nothing to show
                browser.screenshot("failed")
