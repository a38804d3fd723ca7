"""End to end: a registration over HTTP queues a verification mail; the worker process that compose runs
(`python -m app.mail.worker`, MAIL_BACKEND=smtp) delivers it over STARTTLS to the test SMTP server; the
link read back from that server, followed as a browser would, verifies the account."""

import asyncio
import signal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from tests.account.helpers import LINK
from tests.auth.helpers import live_email, register
from tests.mail.helpers import ReceivedMail, SmtpSink
from tests.mail.test_worker import start_worker, wait_for, worker_environment


class Form(HTMLParser):
    """The first form of a page: where it goes, how, and the fields a browser would submit with it."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done and self.action is None:
            self._in_form = True
            self.action = attributes.get("action", "")
            self.method = attributes.get("method", "get").lower()
        elif self._in_form and tag in {"input", "button"} and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True


async def follow_as_a_browser(client: httpx.AsyncClient, link: str) -> httpx.Response:
    """GET the mailed link (on this app: its path and query); if the page is a form, submit it, as a
    person pressing its button would. Works whether the link acts on GET or shows a confirmation page."""
    parts = urlsplit(link)
    page_url = f"{parts.path}?{parts.query}"
    page = await client.get(page_url, follow_redirects=True)
    form = Form()
    form.feed(page.text)
    if form.action is None:
        return page
    target = urljoin(page_url, form.action) if form.action else page_url
    if form.method == "post":
        return await client.post(target, data=form.fields, follow_redirects=True)
    return await client.get(target, params=form.fields, follow_redirects=True)


async def is_verified(engine: AsyncEngine, email: str) -> bool:
    async with engine.connect() as connection:
        verified = await connection.scalar(
            text("SELECT is_verified FROM users WHERE email = :email"), {"email": email}
        )
    return bool(verified)


async def test_the_worker_mails_a_registration_link_over_smtp_and_the_link_verifies_the_account(
    live_client: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    sink: SmtpSink,
    sink_ca_file: Path,
    tmp_path: Path,
) -> None:
    email = live_email("end-to-end")
    assert (await register(live_client, email)).status_code == 201
    assert not await is_verified(engine, email)
    environment = worker_environment(
        settings, **sink.starttls_settings(SMTP_TLS_CA_FILE=str(sink_ca_file), MAIL_POLL_INTERVAL_SECONDS=0.2)
    )
    worker = await start_worker(environment, tmp_path / "heartbeat")
    try:
        mails: list[ReceivedMail] = []

        async def delivered() -> bool:
            mails[:] = [mail for mail in await sink.received() if mail.rcpt_tos == [email]]
            return bool(mails)

        await wait_for("the verification mail", delivered, within=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=15)
    assert worker.returncode == 0, stderr.decode()

    [mail] = mails
    assert mail.tls is not None, "delivered over STARTTLS"
    match = LINK.search(mail.body)
    assert match, mail.body
    answer = await follow_as_a_browser(live_client, match.group(1))

    assert answer.status_code == 200, answer.text
    assert await is_verified(engine, email)
    assert match.group(2) not in stderr.decode(), "the worker's log never carries the link"
