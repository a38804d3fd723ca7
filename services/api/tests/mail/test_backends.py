"""The backends: console prints the whole mail; SMTP presents its credentials, never downgrades from
STARTTLS, and tells permanent refusals from transient ones."""

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import pytest
from pydantic import SecretStr

from app.mail.backends import (
    ConsoleBackend,
    MailConfigurationError,
    PermanentDeliveryError,
    SmtpBackend,
    build_backend,
)
from app.mail.models import OutboxMail
from app.mail.outbox import build_message
from tests.conftest import make_settings
from tests.mail import smtp_sink
from tests.mail.helpers import SmtpSink, address


def a_message(to: str | None = None, body: str = "Hello.\n") -> EmailMessage:
    mail = OutboxMail(
        id=uuid.uuid4(),
        recipient=to or address(),
        subject="Confirm your email address",
        body=body,
        created_at=datetime(2026, 11, 25, 17, 0, tzinfo=UTC),
    )
    return build_message(mail, "pyauth <no-reply@pyauth.test>")


async def test_the_console_backend_prints_the_whole_mail_with_its_link(
    capsys: pytest.CaptureFixture[str],
) -> None:
    link = "http://localhost:8000/auth/verify?token=" + "k" * 43
    message = a_message(to="dora@example.org", body=f"Open this link:\n\n{link}\n")

    await ConsoleBackend().send(message)

    printed = capsys.readouterr().out
    assert "To: dora@example.org" in printed
    assert "Subject: Confirm your email address" in printed
    assert "From: pyauth <no-reply@pyauth.test>" in printed
    assert link in printed, "the link is printed whole, not wrapped or encoded"


def test_development_delivers_to_the_console_by_default() -> None:
    assert isinstance(build_backend(make_settings(ENVIRONMENT="development")), ConsoleBackend)


def test_production_refuses_the_console_backend() -> None:
    # model_copy: the production checks of other settings (database password, https) are not the point here.
    production = make_settings().model_copy(update={"ENVIRONMENT": "production"})
    with pytest.raises(MailConfigurationError, match="MAIL_BACKEND=smtp"):
        build_backend(production.model_copy(update={"MAIL_BACKEND": "console"}))
    assert isinstance(build_backend(production.model_copy(update={"MAIL_BACKEND": "smtp"})), SmtpBackend)


def test_a_mail_from_without_an_address_is_refused() -> None:
    with pytest.raises(MailConfigurationError, match="MAIL_FROM"):
        build_backend(make_settings(MAIL_FROM="pyauth"))


async def test_smtp_credentials_are_presented_to_the_server(sink: SmtpSink) -> None:
    settings = make_settings(
        **sink.settings(SMTP_USERNAME=smtp_sink.LOGIN, SMTP_PASSWORD=SecretStr(smtp_sink.PASSWORD))
    )
    await SmtpBackend(settings).send(a_message())
    [received] = await sink.received()
    assert received.login == smtp_sink.LOGIN


async def test_wrong_smtp_credentials_fail_the_attempt_as_transient(sink: SmtpSink) -> None:
    settings = make_settings(
        **sink.settings(SMTP_USERNAME=smtp_sink.LOGIN, SMTP_PASSWORD=SecretStr("not-the-password"))
    )
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as raised:
        await SmtpBackend(settings).send(a_message())
    assert not isinstance(raised.value, PermanentDeliveryError)
    assert await sink.received() == []


async def test_starttls_is_required_never_skipped_when_the_server_does_not_offer_it(sink: SmtpSink) -> None:
    settings = make_settings(**sink.settings(SMTP_SECURITY="starttls"))
    with pytest.raises(aiosmtplib.SMTPException):
        await SmtpBackend(settings).send(a_message())
    assert await sink.received() == [], "nothing was sent in plain text"


async def test_implicit_tls_to_a_plain_server_fails_and_sends_nothing(sink: SmtpSink) -> None:
    settings = make_settings(**sink.settings(SMTP_SECURITY="tls", SMTP_TIMEOUT=3))
    with pytest.raises((aiosmtplib.SMTPException, OSError, TimeoutError)):
        await SmtpBackend(settings).send(a_message())
    assert await sink.received() == []


@pytest.mark.parametrize(("code", "permanent"), [(451, False), (452, False), (550, True), (553, True)])
async def test_a_5xx_refusal_is_permanent_and_a_4xx_one_is_not(
    sink: SmtpSink, code: int, permanent: bool
) -> None:
    await sink.refuse(code)
    with pytest.raises(Exception) as raised:  # which kind of exception is the point, checked below
        await SmtpBackend(make_settings(**sink.settings())).send(a_message())
    assert isinstance(raised.value, PermanentDeliveryError) is permanent
    assert str(code) in str(raised.value) or str(code) in repr(raised.value)
