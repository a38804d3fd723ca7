"""Issue 10 item 8: an account mail reaches the SMTP server as multipart/alternative (RFC 2046 section
5.1.4), text first and HTML second, in the recipient's language; once sent, neither part stays in the
outbox."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.account import mails
from app.core.clock import ManualClock
from app.core.config import Settings
from app.mail.backends import SmtpBackend
from app.mail.outbox import enqueue
from app.mail.worker import deliver_due
from tests.mail.helpers import SmtpSink, address, outbox_row


async def test_an_account_mail_is_delivered_as_text_and_html_alternatives(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    to = address("anna")
    token = "LIVE-" + uuid.uuid4().hex
    mail = mails.verify_email(mail_settings, token, "de")
    async with sessionmaker.begin() as session:
        mail_id = await enqueue(
            session,
            to=to,
            subject=mail.subject,
            body=mail.body,
            html=mail.html,
            now=clock.now(),
            kind=mail.kind,
        )

    assert await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock) == 1

    [received] = await sink.received()
    message = received.message
    assert message["Subject"] == "Bestätigen Sie Ihre E-Mail-Adresse für pyauth"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    text, html = (str(part.get_content()).replace("\r\n", "\n") for part in parts)
    assert text == mail.body and received.body == mail.body
    assert html == mail.html
    assert '<html lang="de">' in html and f"token={token}" in html
    row = await outbox_row(sessionmaker, mail_id)
    assert row.sent_at is not None
    assert (row.body, row.html_body) == ("", None), "no copy of the link stays in the outbox"


async def test_a_text_only_mail_stays_a_single_text_part(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    """`enqueue` without `html` (the outbox's other callers, and rows queued before migration 0012)."""
    async with sessionmaker.begin() as session:
        await enqueue(session, to=address(), subject="Hi", body="Hi.\n", now=clock.now())
    assert await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock) == 1
    [received] = await sink.received()
    assert received.message.get_content_type() == "text/plain"
