"""SMTP over TLS against a server with a certificate from a private CA: STARTTLS (RFC 3207) and implicit
TLS (RFC 8314) deliver when SMTP_TLS_CA_FILE trusts that CA, and an untrusted certificate is refused
before anything is sent."""

import ssl
from pathlib import Path

import pytest

from app.mail.backends import MailConfigurationError, PermanentDeliveryError, SmtpBackend, build_backend
from tests.conftest import make_settings
from tests.mail.helpers import SmtpSink, address
from tests.mail.smtp_sink import make_certificates
from tests.mail.test_backends import a_message


def _caused_by_certificate(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def test_smtp_delivers_over_starttls_to_a_server_of_a_trusted_private_ca_rfc_3207(
    sink: SmtpSink, sink_ca_file: Path
) -> None:
    to = address("starttls")
    settings = make_settings(**sink.starttls_settings(SMTP_TLS_CA_FILE=str(sink_ca_file)))

    await SmtpBackend(settings).send(a_message(to))

    [received] = await sink.received()
    assert received.rcpt_tos == [to]
    assert received.tls is not None and received.tls.startswith("TLSv1."), received.tls


async def test_smtp_delivers_over_implicit_tls_to_a_server_of_a_trusted_private_ca_rfc_8314(
    sink: SmtpSink, sink_ca_file: Path
) -> None:
    to = address("implicit-tls")
    settings = make_settings(**sink.tls_settings(SMTP_TLS_CA_FILE=str(sink_ca_file)))

    await SmtpBackend(settings).send(a_message(to))

    [received] = await sink.received()
    assert received.rcpt_tos == [to]
    assert received.tls is not None and received.tls.startswith("TLSv1."), received.tls


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_a_certificate_no_trusted_ca_signed_is_refused_and_nothing_is_sent(
    sink: SmtpSink, security: str
) -> None:
    """Without SMTP_TLS_CA_FILE only the system's CAs are trusted, and they never signed the test CA: the
    backend refuses the server rather than falling back to an unverified connection."""
    overrides = sink.starttls_settings() if security == "starttls" else sink.tls_settings()
    with pytest.raises(Exception) as raised:  # aiosmtplib wraps the TLS error; its cause is checked below
        await SmtpBackend(make_settings(**overrides)).send(a_message())

    assert _caused_by_certificate(raised.value), repr(raised.value)
    assert not isinstance(raised.value, PermanentDeliveryError), "retried: the operator can fix the trust"
    assert await sink.received() == []


async def test_a_ca_file_of_another_ca_does_not_trust_the_server(sink: SmtpSink, tmp_path: Path) -> None:
    """SMTP_TLS_CA_FILE replaces the trusted CAs: a file holding some other CA trusts nothing here."""
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(make_certificates().ca_pem)
    settings = make_settings(**sink.tls_settings(SMTP_TLS_CA_FILE=str(other_ca)))
    with pytest.raises(Exception) as raised:  # as above
        await SmtpBackend(settings).send(a_message())
    assert _caused_by_certificate(raised.value), repr(raised.value)
    assert await sink.received() == []


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_an_unreadable_ca_file_stops_the_worker_at_start(tmp_path: Path, content: str | None) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    settings = make_settings(MAIL_BACKEND="smtp", SMTP_TLS_CA_FILE=str(ca_file))
    with pytest.raises(MailConfigurationError, match="SMTP_TLS_CA_FILE"):
        build_backend(settings)


def test_an_empty_ca_file_setting_means_the_systems_cas() -> None:
    assert make_settings(SMTP_TLS_CA_FILE="").SMTP_TLS_CA_FILE is None
