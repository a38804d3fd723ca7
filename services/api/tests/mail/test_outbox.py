"""enqueue(): a mail exists if and only if the caller's transaction commits, and queuing it talks to no
mail server."""

import time

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import ManualClock
from app.mail.models import OutboxMail
from app.mail.outbox import InvalidOutgoingMail, enqueue
from tests.mail.helpers import SmtpSink, address, outbox_row, outbox_rows


async def test_a_mail_queued_in_a_rolled_back_transaction_does_not_exist(
    sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with sessionmaker() as session:
        await session.begin()
        mail_id = await enqueue(session, to=address(), subject="Hello", body="Hi.\n", now=clock.now())
        assert await session.get(OutboxMail, mail_id) is not None, "flushed into the caller's transaction"
        await session.rollback()
    async with sessionmaker() as session:
        assert await session.get(OutboxMail, mail_id) is None
    assert await outbox_rows(sessionmaker) == []


async def test_a_mail_queued_in_a_transaction_exists_once_it_commits_and_not_before(
    sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    to = address("alice")
    async with sessionmaker() as session:
        await session.begin()
        mail_id = await enqueue(
            session, to=to, subject="Confirm", body="Link\n", now=clock.now(), kind="verify_email"
        )
        async with sessionmaker() as other:
            assert await other.get(OutboxMail, mail_id) is None, "not visible outside the transaction"
        await session.commit()

    row = await outbox_row(sessionmaker, mail_id)
    assert (row.recipient, row.subject, row.body, row.kind) == (to, "Confirm", "Link\n", "verify_email")
    assert row.created_at == row.next_attempt_at == clock.now()
    assert (row.attempts, row.sent_at, row.failed_at, row.last_error) == (0, None, None, None)


async def test_queuing_a_mail_contacts_no_mail_server_even_when_it_is_down(
    sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock, sink: SmtpSink
) -> None:
    await sink.down()
    started = time.monotonic()
    async with sessionmaker.begin() as session:
        await enqueue(session, to=address(), subject="Reset", body="Link\n", now=clock.now())
    assert time.monotonic() - started < 1.0
    await sink.up()
    assert (await sink.state())["sessions"] == 0, "no SMTP session was opened"
    assert len(await outbox_rows(sessionmaker)) == 1


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("victim@example.org\r\nBcc: everyone@example.net", "Hello"),
        ("victim@example.org, other@example.net", "Hello"),
        ("Victim <victim@example.org>", "Hello"),
        ("not-an-address", "Hello"),
        ("victim@example.org", "Hello\r\nBcc: everyone@example.net"),
        ("victim@example.org", ""),
        ("victim@example.org", "x" * 256),
    ],
)
async def test_a_mail_that_is_not_one_address_and_one_subject_line_is_refused(
    db_session: AsyncSession, clock: ManualClock, to: str, subject: str
) -> None:
    with pytest.raises(InvalidOutgoingMail):
        await enqueue(db_session, to=to, subject=subject, body="Hi\n", now=clock.now())


async def test_enqueue_needs_a_timezone_aware_time(db_session: AsyncSession, clock: ManualClock) -> None:
    with pytest.raises(InvalidOutgoingMail):
        await enqueue(
            db_session, to=address(), subject="Hi", body="Hi\n", now=clock.now().replace(tzinfo=None)
        )
