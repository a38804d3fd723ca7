"""A real browser for tests: headless Chromium driven by Selenium through Debian's chromedriver, and the
real app served to it over HTTP.

`Browser` wraps the WebDriver session a test gets with what page tests need: open a path of the app, fill a
field by its label, press a button or follow a link by its words, wait for an element, and a screenshot of
each page (named after its title, numbered in the order the test saw them). `SharedChromium` is the one
Chromium of a test process, and `forget_everything` makes it as fresh as a new profile between tests.
`served_in_thread` serves an app with uvicorn in a thread of its own (its own event loop), so that a test
may block on the browser while the app answers it.
"""

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import uvicorn
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver import Chrome, ChromeOptions, ChromeService
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from starlette.types import ASGIApp

from tests.servers import url_of

# Window sizes (CSS pixels): a phone held upright and a laptop screen.
PHONE = (390, 844)
DESKTOP = (1280, 900)
PHONE_MAX_WIDTH = 600
WAIT_SECONDS = 10

# `make test` sets it: there a missing browser is an error, never a skip.
BROWSER_REQUIRED = os.environ.get("PYAUTH_BROWSER_REQUIRED") == "1"
# `make test` sets it too: the compose `browser` service runs chromedriver (and every Chromium it starts) on
# this loopback port; the tests service shares that service's network namespace, so the pages the tests
# serve on loopback are loopback to the browser as well. Unset (a host run), the tests start a chromedriver.
RUNNING_CHROMEDRIVER_PORT = os.environ.get("PYAUTH_CHROMEDRIVER_PORT")


# Scripts the helpers run in the page. "Displayed" as WebDriver's own check has it: rendered, with a box of
# some size, not hidden by `visibility` or transparent by `opacity`; an element's words as WebDriver reads
# them (its rendered text, whitespace collapsed), an input's from its value.
_IN_PAGE = """
const displayed = e => e.checkVisibility({opacityProperty: true, visibilityProperty: true})
    && e.getClientRects().length > 0
    && (e.getBoundingClientRect().width > 0 || e.getBoundingClientRect().height > 0);
const words = e => (displayed(e) ? e.innerText : '').split(/\\s+/).filter(Boolean).join(' ');
"""
# The first element matching a CSS selector (displayed, if asked), or null.
FIRST_MATCH = (
    _IN_PAGE
    + """
const [css, visible] = arguments;
for (const e of document.querySelectorAll(css)) { if (!visible || displayed(e)) return e; }
return null;
"""
)
# The control a label reading these words names (`for`) or wraps, whether it is empty, and every label's
# words (for the error message).
LABELLED_CONTROL = (
    _IN_PAGE
    + """
const seen = [];
for (const label of document.getElementsByTagName('label')) {
    const text = words(label);
    seen.push(text);
    if (text !== arguments[0]) continue;
    const target = label.getAttribute('for');
    const control = target ? document.getElementById(target) : label.querySelector('input, select, textarea');
    if (control) return [control, control.value === '', seen];
    if (target) break;
}
return [null, false, seen];
"""
)
# The displayed element matching a selector whose words (or, for an input, value) read these words; if
# asked, the page is marked, so that NEW_PAGE_TITLE sees when another replaced it.
DISPLAYED_CONTROL = (
    _IN_PAGE
    + """
const [wanted, css, mark] = arguments;
for (const e of document.querySelectorAll(css)) {
    const text = words(e) || (e.tagName === 'INPUT' ? e.value.split(/\\s+/).filter(Boolean).join(' ') : '');
    if (text === wanted && displayed(e)) {
        if (mark) document.pyauthLeft = true;
        return e;
    }
}
return null;
"""
)
PNG_FOR_SPEED = {"format": "png", "optimizeForSpeed": True}
# The title of the page once the marked one was replaced and the new one has loaded; else null.
NEW_PAGE_TITLE = """
return document.pyauthLeft || document.readyState !== 'complete' ? null : document.title;
"""


def find_browser() -> tuple[str, str] | None:
    """The chromium binary and its chromedriver (PYAUTH_CHROMIUM / PYAUTH_CHROMEDRIVER, else on PATH), or
    None if either is missing."""
    chromium = (
        os.environ.get("PYAUTH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    driver = os.environ.get("PYAUTH_CHROMEDRIVER") or shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def chromium_options(chromium: str, window: tuple[int, int], profile: Path) -> ChromeOptions:
    """Headless Chromium that reaches nothing but loopback: every host name resolves to nothing and every
    other address goes to a proxy that is not there (loopback bypasses proxies), so a page that asks for a
    CDN fails visibly instead of quietly working on a machine that has internet. No background traffic
    (updates, sync, metrics). The performance log records every request the pages send."""
    options = ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        # The container has no user namespaces for the sandbox, and a 64 MB /dev/shm.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={window[0]},{window[1]}",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        "--proxy-server=http://127.0.0.1:9",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return options


def slug(text: str, limit: int = 60) -> str:
    """`text` as a file name: lower case, words joined by dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "page"


class Browser:
    """One headless Chromium session on the app at `base_url`, saving screenshots into `screenshots`."""

    def __init__(self, driver: Chrome, base_url: str, screenshots: Path) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.screenshots = screenshots
        self.shots: list[Path] = []
        self._requests: list[str] = []

    # Pages

    def visit(self, path: str, *, wait_for: str | None = None) -> None:
        """Open `path` of the app (or an absolute URL) and take the page's screenshot: once the page has
        loaded, or once an element matching the CSS selector `wait_for` shows (a page its scripts draw)."""
        self.driver.get(path if "://" in path else self.base_url + path)
        if wait_for is not None:
            self.wait_for(wait_for)
        self.screenshot()

    @property
    def title(self) -> str:
        return str(self.driver.title)

    @property
    def path(self) -> str:
        """The current URL without the app's origin."""
        url = str(self.driver.current_url)
        return url.removeprefix(self.base_url)

    def show(self, element: WebElement) -> WebElement:
        """Scroll `element` to the middle of the window (before a screenshot that should show it)."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        return element

    def screenshot(self, name: str | None = None) -> Path:
        """Save what the window shows as `<n>-<name>.png` (`name` defaults to the page's title). A PNG
        encoded for speed rather than size (DevTools' `Page.captureScreenshot`): the same picture,
        cheaper to make than WebDriver's screenshot."""
        self.screenshots.mkdir(parents=True, exist_ok=True)
        target = self.screenshots / f"{len(self.shots) + 1:02d}-{slug(name or self.title)}.png"
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", PNG_FOR_SPEED)
        target.write_bytes(base64.b64decode(shot["data"]))
        with contextlib.suppress(OSError):
            target.chmod(0o666)  # the host's user may remove what the test image's user wrote
        self.shots.append(target)
        return target

    # Elements (each found by one script in the page: one WebDriver round trip, not one per candidate)

    def wait_for(self, css: str, *, visible: bool = True, timeout: float = WAIT_SECONDS) -> WebElement:
        """The first element matching `css` once it exists (and, by default, is displayed)."""

        def found(driver: Chrome) -> WebElement | Literal[False]:
            element: WebElement | None = driver.execute_script(FIRST_MATCH, css, visible)
            return element or False

        try:
            element = WebDriverWait(self.driver, timeout).until(found)
        except TimeoutException:
            self.screenshot(f"timeout {css}")
            raise AssertionError(f"{css!r} did not appear on {self.path} within {timeout} s") from None
        return element

    def wait_until(
        self, condition: Callable[[], object], what: str, *, timeout: float = WAIT_SECONDS
    ) -> None:
        """Wait until `condition()` is true; else fail saying `what` was awaited (with a screenshot)."""
        try:
            WebDriverWait(self.driver, timeout).until(lambda _: condition())
        except TimeoutException:
            self.screenshot(f"timeout {what}")
            raise AssertionError(f"{what}: not within {timeout} s on {self.path}") from None

    def field(self, label: str) -> WebElement:
        """The form control whose `<label>` reads `label` (its own words, exactly): the control the label
        wraps, or the one its `for` names. A test that finds its fields by label also checks they have
        one."""
        return self._field(label)[0]

    def _field(self, label: str) -> tuple[WebElement, bool]:
        """The control labelled `label`, and whether it is empty."""
        control, empty, seen = self.driver.execute_script(LABELLED_CONTROL, label)
        if control is None:
            raise AssertionError(f"no form control labelled {label!r} on {self.path}; labels: {seen}")
        return control, bool(empty)

    def fill(self, label: str, value: str) -> None:
        """Type `value` into the field labelled `label`, replacing what it held."""
        control, empty = self._field(label)
        if not empty:
            control.clear()
        control.send_keys(value)

    def press(self, words: str, *, navigates: bool = True) -> None:
        """Click the button (or submit input) that reads `words`. By default it must lead to a new page (a
        form's submission): wait for it to load and take its screenshot. `navigates=False` for a button
        that acts within the page (a script, a dialog)."""
        self.button(words, marking_the_page=navigates).click()
        if navigates:
            self._new_page_after(f"pressing {words!r}")

    def follow(self, words: str) -> None:
        """Click the displayed link that reads `words`; wait for the page it leads to, take its screenshot."""
        link: WebElement | None = self.driver.execute_script(DISPLAYED_CONTROL, words, "a", True)
        if link is None:
            raise AssertionError(f"no link {words!r} on {self.path}")
        link.click()
        self._new_page_after(f"following {words!r}")

    def _new_page_after(self, action: str) -> None:
        """Wait until the page marked before `action` was replaced by one that has loaded (one script a
        poll: the marker is gone and the document is complete), then take its screenshot."""
        loaded: list[str] = []

        def replaced_and_loaded() -> bool:
            title = self.driver.execute_script(NEW_PAGE_TITLE)
            if title is None:
                return False
            loaded.append(str(title))
            return True

        self.wait_until(replaced_and_loaded, f"{action} leads to a new page that loads")
        self.screenshot(loaded[0])

    def fits_the_width(self) -> bool:
        """True when the page needs no sideways scrolling in its window."""
        return bool(
            self.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        )

    def button(self, words: str, *, marking_the_page: bool = False) -> WebElement:
        """The displayed button (or submit input) that reads `words`; `marking_the_page` marks the page for
        `_new_page_after` in the same round trip."""
        found: WebElement | None = self.driver.execute_script(
            DISPLAYED_CONTROL, words, "button, input[type=submit]", marking_the_page
        )
        if found is None:
            raise AssertionError(f"no button {words!r} on {self.path}")
        return found

    # What the pages asked for

    def requested_urls(self) -> list[str]:
        """Every URL the browser has requested for the pages so far (Chromium's performance log)."""
        for entry in self.driver.get_log("performance"):  # type: ignore[no-untyped-call]  # untyped upstream
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self._requests.append(message["params"]["request"]["url"])
        return list(self._requests)

    def foreign_requests(self) -> list[str]:
        """Requested network URLs (http, https, ws, wss) outside the app's origin: what would leave the
        host. The browser's own pages (chrome://, its new tab) and data:/blob: URLs are not the network."""
        return [
            url
            for url in self.requested_urls()
            if url.startswith(("http:", "https:", "ws:", "wss:")) and not url.startswith(self.base_url + "/")
        ]


class RunningChromedriver(ChromeService):
    """The browser service's chromedriver, already listening on a loopback port: nothing to start or stop
    (its Chromium sessions still end with the driver's `quit`)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def start_chromium(chromium: str, chromedriver: str, profile: Path) -> Chrome:
    """A headless Chromium session (a DESKTOP window until `fit_window`) through the browser service's
    chromedriver when one runs (`RUNNING_CHROMEDRIVER_PORT`), else through `chromedriver` started here."""
    options = chromium_options(chromium, DESKTOP, profile)
    # The driver is named, so Selenium Manager (which would look for drivers online) never runs.
    if RUNNING_CHROMEDRIVER_PORT:
        service: ChromeService = RunningChromedriver(
            executable_path=chromedriver, port=int(RUNNING_CHROMEDRIVER_PORT)
        )
    else:
        service = ChromeService(executable_path=chromedriver)
    return Chrome(options=options, service=service)


def fit_window(driver: Chrome, window: tuple[int, int]) -> None:
    """The page's viewport is exactly `window` (headless windows are never narrower than 500 px), and a
    narrow one is a phone's: the page's `<meta name=viewport>` applies."""
    width, height = window
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < PHONE_MAX_WIDTH},
    )


def forget_everything(driver: Chrome, origins: Iterable[str]) -> None:
    """The browser as a new profile would be, for the next test: one blank tab, no cookies, no cache, and
    no storage (local and session storage, IndexedDB, service workers...) of the origins it visited, and
    nothing left in the request log."""
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    for origin in origins:
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    driver.get_log("performance")  # type: ignore[no-untyped-call]  # untyped upstream


def origins_of(urls: Iterable[str]) -> set[str]:
    """The http(s) origins among `urls`."""
    found = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            found.add(f"{parts.scheme}://{parts.netloc}")
    return found


class SharedChromium:
    """One Chromium for every browser test of a process (starting one costs ~1.3 s): `session()` hands
    out its driver, started on first use and started again if the last test left it dead."""

    def __init__(self, chromium: str, chromedriver: str, profile: Path) -> None:
        self.chromium, self.chromedriver, self.profile = chromium, chromedriver, profile
        self._driver: Chrome | None = None

    def session(self) -> Chrome:
        if self._driver is not None:
            try:
                self._driver.window_handles  # noqa: B018 - a cheap command: is the browser alive?
            except WebDriverException:
                self.quit()
        if self._driver is None:
            self._driver = start_chromium(self.chromium, self.chromedriver, self.profile)
        return self._driver

    def quit(self) -> None:
        if self._driver is not None:
            with contextlib.suppress(WebDriverException):
                self._driver.quit()
            self._driver = None


@contextmanager
def served_in_thread(app: ASGIApp, sock: socket.socket) -> Iterator[str]:
    """`app` served by uvicorn on `sock`, its lifespan included, in a thread with its own event loop;
    yields its URL. The test's own loop may then block on the browser while the app answers it."""
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None, access_log=False))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, name="pyauth-browser-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise AssertionError(f"the app did not start: {failure or 'timeout'}")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(WAIT_SECONDS)
