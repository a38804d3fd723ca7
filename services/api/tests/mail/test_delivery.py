"""deliver_due() against a real SMTP server: delivery, retries with backoff, outages, concurrent workers,
the attempt limit, and what the log says."""

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import ManualClock
from app.core.config import Settings
from app.mail.backends import SmtpBackend
from app.mail.worker import deliver_due, retry_delay
from tests.conftest import make_settings
from tests.mail.helpers import SmtpSink, address, later, outbox_row, outbox_rows, queue


async def test_a_queued_mail_is_delivered_as_queued_and_marked_sent(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    to = address("alice")
    subject = "Confirm your email address for pyauth"
    body = "Open this link:\n\nhttps://pyauth.test/auth/verify?token=" + "t" * 120 + "\n\nThanks — pyauth\n"
    mail_id = await queue(sessionmaker, clock, to=to, subject=subject, body=body)

    handled = await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock)

    assert handled == 1
    [received] = await sink.received()
    assert received.rcpt_tos == [to]
    assert received.mail_from == "no-reply@pyauth.test"
    assert received.message["To"] == to
    assert received.message["From"] == "pyauth tests <no-reply@pyauth.test>"
    assert received.message["Subject"] == subject
    assert received.message["Message-ID"] == f"<{mail_id}@pyauth.test>"
    assert received.body == body
    row = await outbox_row(sessionmaker, mail_id)
    assert row.sent_at == clock.now()
    assert (row.attempts, row.failed_at, row.last_error) == (1, None, None)
    assert await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock) == 0
    assert len(await sink.received()) == 1


async def test_a_refused_mail_is_retried_after_a_backoff_and_arrives_exactly_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    backend = SmtpBackend(mail_settings)
    mail_id = await queue(sessionmaker, clock)
    await sink.refuse(451)

    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 1
    row = await outbox_row(sessionmaker, mail_id)
    assert (row.attempts, row.sent_at, row.failed_at) == (1, None, None)
    assert row.last_error is not None and "451" in row.last_error
    # The first retry comes after MAIL_RETRY_BASE_SECONDS (10 s), jittered into its upper half.
    assert clock.now() + timedelta(seconds=5) <= row.next_attempt_at <= clock.now() + timedelta(seconds=10)
    assert await sink.received() == []

    await sink.accept()
    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 0, "not due before its time"
    later(clock, row.next_attempt_at)
    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 1

    row = await outbox_row(sessionmaker, mail_id)
    assert (row.attempts, row.sent_at, row.last_error) == (2, clock.now(), None)
    clock.advance(timedelta(hours=1))
    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 0
    received = await sink.received()
    assert len(received) == 1
    assert received[0].message["Message-ID"] == f"<{mail_id}@pyauth.test>"


async def test_mail_waits_while_the_smtp_server_is_down_and_goes_out_when_it_is_back(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    backend = SmtpBackend(mail_settings)
    mail_ids = [await queue(sessionmaker, clock) for _ in range(3)]
    await sink.down()

    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 3
    rows = await outbox_rows(sessionmaker)
    assert [row.attempts for row in rows] == [1, 1, 1]
    assert all(row.sent_at is None and row.failed_at is None for row in rows)
    assert all(row.last_error and "SMTPConnectError" in row.last_error for row in rows)

    clock.advance(timedelta(seconds=10))
    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 3, "tried again, still down"
    await sink.up()
    clock.advance(timedelta(seconds=20))
    assert await deliver_due(sessionmaker, backend, mail_settings, clock) == 3

    received = await sink.received()
    assert sorted(mail.message["Message-ID"] for mail in received) == sorted(
        f"<{mail_id}@pyauth.test>" for mail_id in mail_ids
    )
    assert all(row.sent_at is not None and row.attempts == 3 for row in await outbox_rows(sessionmaker))


async def test_two_workers_at_once_never_send_the_same_mail_twice(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    mail_ids = [await queue(sessionmaker, clock) for _ in range(10)]
    await sink.slow(0.1)  # each send takes a while, so the two workers are in flight together

    handled = await asyncio.gather(
        deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock),
        deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock),
    )

    assert sum(handled) == 10
    assert min(handled) >= 1, f"both workers delivered: {handled}"
    message_ids = [mail.message["Message-ID"] for mail in await sink.received()]
    assert sorted(message_ids) == sorted(f"<{mail_id}@pyauth.test>" for mail_id in mail_ids)
    assert [row.attempts for row in await outbox_rows(sessionmaker)] == [1] * 10


async def test_attempts_stop_at_the_maximum_and_the_mail_is_kept_as_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(**sink.settings(MAIL_MAX_ATTEMPTS=3, MAIL_RETRY_MAX_SECONDS=60))
    backend = SmtpBackend(settings)
    mail_id = await queue(sessionmaker, clock)
    await sink.refuse(451)

    caplog.set_level(logging.INFO, logger="pyauth.mail")
    for attempt in (1, 2, 3):
        assert await deliver_due(sessionmaker, backend, settings, clock) == 1, f"attempt {attempt}"
        clock.advance(timedelta(seconds=60))

    row = await outbox_row(sessionmaker, mail_id)
    assert row.attempts == 3
    assert row.failed_at is not None and row.sent_at is None
    assert row.last_error is not None and "451" in row.last_error
    assert [record.levelname for record in caplog.records] == ["WARNING", "WARNING", "ERROR"]
    assert "failed for good" in caplog.records[-1].getMessage()

    await sink.accept()
    clock.advance(timedelta(days=1))
    assert await deliver_due(sessionmaker, backend, settings, clock) == 0
    assert await sink.received() == []
    assert (await outbox_row(sessionmaker, mail_id)).attempts == 3


async def test_a_permanent_refusal_fails_the_mail_at_once_and_keeps_it(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    mail_id = await queue(sessionmaker, clock)
    await sink.refuse(550)

    assert await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock) == 1

    row = await outbox_row(sessionmaker, mail_id)
    assert (row.attempts, row.sent_at) == (1, None)
    assert row.failed_at == clock.now()
    assert row.last_error is not None and "550" in row.last_error
    await sink.accept()
    clock.advance(timedelta(days=1))
    assert await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock) == 0


async def test_the_log_names_the_mail_and_the_recipient_domain_only(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    to = address("carol-secret-local-part", domain="mail.example.net")
    body = "https://pyauth.test/auth/password/reset?token=SECRET-TOKEN-123\n"
    mail_id = await queue(sessionmaker, clock, to=to, body=body, kind="reset_password")
    caplog.set_level(logging.DEBUG)

    await sink.refuse(451)
    await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock)
    await sink.accept()
    clock.advance(timedelta(minutes=1))
    await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock)

    lines = [record.getMessage() for record in caplog.records if record.name.startswith("pyauth")]
    assert len(lines) == 2, lines
    for line in lines:
        assert str(mail_id) in line
        assert "@mail.example.net" in line
        assert "reset_password" in line
    assert "sent" in lines[1]
    everything = "\n".join(caplog.text.splitlines() + [str(vars(record)) for record in caplog.records])
    assert "carol-secret-local-part" not in everything
    assert "SECRET-TOKEN-123" not in everything


def test_retry_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    settings = make_settings(MAIL_RETRY_BASE_SECONDS=10, MAIL_RETRY_MAX_SECONDS=3600)
    longest = [retry_delay(n, settings, rand=lambda: 1.0).total_seconds() for n in range(1, 12)]
    shortest = [retry_delay(n, settings, rand=lambda: 0.0).total_seconds() for n in range(1, 12)]
    assert longest == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    assert shortest == [delay / 2 for delay in longest]
    assert retry_delay(100, settings).total_seconds() <= 3600


async def test_a_sent_mail_keeps_no_copy_of_its_link_in_the_outbox(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    link = "https://pyauth.test/auth/password/reset?token=LIVE-RESET-TOKEN-" + "r" * 30
    mail_id = await queue(sessionmaker, clock, body=f"Open {link}\n", kind="reset_password")

    await deliver_due(sessionmaker, SmtpBackend(mail_settings), mail_settings, clock)

    [received] = await sink.received()
    assert link in received.body, "the recipient gets the link"
    row = await outbox_row(sessionmaker, mail_id)
    assert row.sent_at is not None
    assert row.body == "", "the database does not"
    assert (row.recipient, row.kind) != ("", None), "what the mail was stays for the retention period"


async def test_a_mail_retried_keeps_its_body_and_one_failed_for_good_does_not(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sink: SmtpSink,
    mail_settings: Settings,
) -> None:
    body = "https://pyauth.test/auth/verify?token=LIVE-VERIFY-TOKEN\n"
    backend = SmtpBackend(mail_settings)
    retried = await queue(sessionmaker, clock, body=body)
    await sink.refuse(451)
    await deliver_due(sessionmaker, backend, mail_settings, clock)
    assert (await outbox_row(sessionmaker, retried)).body == body, "still to be sent: kept whole"

    refused = await queue(sessionmaker, clock, body=body)
    clock.advance(timedelta(hours=2))
    await sink.refuse(550)
    await deliver_due(sessionmaker, backend, mail_settings, clock)

    for mail_id in (retried, refused):
        row = await outbox_row(sessionmaker, mail_id)
        assert row.failed_at is not None
        assert row.body == ""
