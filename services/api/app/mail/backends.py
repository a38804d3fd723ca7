"""Mail backends: how the worker hands a message over. `MAIL_BACKEND` picks one.

- `smtp`: delivers to the configured SMTP server with aiosmtplib (plain, STARTTLS or implicit TLS,
  optional credentials). TLS always verifies the server's certificate and name, against the system's CAs
  or, with SMTP_TLS_CA_FILE, against the CAs in that file only (a private CA). A 5xx refusal of the
  recipient or the message raises `PermanentDeliveryError`; every other failure is transient, and the
  worker retries it.
- `console`: prints the whole message to stdout, for development only.
"""

import asyncio
import ssl
import sys
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol, TextIO

import aiosmtplib

from app.core.config import Settings

# Headers the console shows: the ones a developer reads. MIME plumbing is left out.
_CONSOLE_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")
# QUIT after an accepted message is a courtesy: it gets a short bound of its own.
_QUIT_TIMEOUT_SECONDS = 5.0


class MailBackend(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver the message or raise; returning means the server accepted it."""
        ...


class PermanentDeliveryError(Exception):
    """The server refused this message for good (a 5xx reply to RCPT or DATA): retrying cannot help."""


class MailConfigurationError(Exception):
    """The mail settings cannot work, e.g. the console backend in production."""


class ConsoleBackend:
    """Development backend: prints each message, body included, to stdout (so `docker compose logs
    worker` shows the links). The body holds single-use tokens, which is why production refuses it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, message: EmailMessage) -> None:
        stream = self._stream or sys.stdout  # looked up at send time, so a redirected stdout is honoured
        lines = ["----- mail (console backend, development only) -----"]
        lines += [f"{name}: {message[name]}" for name in _CONSOLE_HEADERS if message[name] is not None]
        # The text part only: the HTML alternative says the same, with markup a terminal does not need.
        text_part = message.get_body(preferencelist=("plain",))
        body = str(text_part.get_content()) if text_part is not None else ""
        lines += ["", body.rstrip("\n"), "----- end of mail -----", ""]
        # Printing the body is this backend's purpose: nothing else in pyauth writes a mail body anywhere.
        stream.write("\n".join(lines))
        stream.flush()


class SmtpBackend:
    """Delivers over SMTP, one connection per message, the whole delivery bounded by SMTP_TIMEOUT."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sender = sender_address(settings)
        self._tls_context = tls_context(settings)

    def _client(self) -> aiosmtplib.SMTP:
        settings = self._settings
        password = settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None
        return aiosmtplib.SMTP(
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            use_tls=settings.SMTP_SECURITY == "tls",
            # starttls is required, never opportunistic: a server that does not offer it fails the attempt
            # instead of silently receiving the message in plain text.
            start_tls=settings.SMTP_SECURITY == "starttls",
            timeout=settings.SMTP_TIMEOUT,
            tls_context=self._tls_context,
            username=settings.SMTP_USERNAME or None,
            password=password if settings.SMTP_USERNAME else None,
        )

    async def send(self, message: EmailMessage) -> None:
        client = self._client()
        try:
            async with asyncio.timeout(self._settings.SMTP_TIMEOUT):
                await client.connect()
                await client.send_message(message, sender=self._sender)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            client.close()
            if exc.recipients and all(refused.code >= 500 for refused in exc.recipients):
                raise PermanentDeliveryError(describe_failure(exc)) from exc
            raise
        except aiosmtplib.SMTPDataError as exc:
            client.close()
            if exc.code >= 500:
                raise PermanentDeliveryError(describe_failure(exc)) from exc
            raise
        except BaseException:
            client.close()
            raise
        # The server has accepted the message: a failing QUIT must not turn that into a retry (a duplicate).
        try:
            async with asyncio.timeout(min(self._settings.SMTP_TIMEOUT, _QUIT_TIMEOUT_SECONDS)):
                await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            client.close()


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The client side of SMTP's TLS: certificate and host name verified, always. SMTP_TLS_CA_FILE, when
    set, replaces the system's CAs (a relay with a certificate from a private CA); a file that cannot be
    read as PEM certificates is a configuration error, found at start rather than at the first mail."""
    ca_file = settings.SMTP_TLS_CA_FILE
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise MailConfigurationError(
            f"SMTP_TLS_CA_FILE={ca_file!r} cannot be read as PEM CA certificates ({type(exc).__name__})"
        ) from exc
    if ca_file and not context.get_ca_certs():
        raise MailConfigurationError(f"SMTP_TLS_CA_FILE={ca_file!r} holds no CA certificate")
    return context


def smtp_code(exc: BaseException) -> int | None:
    """The SMTP reply code behind a failure, if the server gave one."""
    if isinstance(exc, PermanentDeliveryError) and exc.__cause__ is not None:
        return smtp_code(exc.__cause__)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code
    return None


def describe_failure(exc: BaseException, *, with_reply: bool = True) -> str:
    """One short line for `last_error`: the exception class, the SMTP code, and (unless `with_reply` is
    false, as for log lines) the server's reply, which may quote the recipient's address."""
    if isinstance(exc, PermanentDeliveryError) and exc.__cause__ is not None:
        return describe_failure(exc.__cause__, with_reply=with_reply)
    parts = [type(exc).__name__]
    code = smtp_code(exc)
    if code is not None:
        parts.append(str(code))
    if with_reply:
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
            parts.append(exc.recipients[0].message)
        elif isinstance(exc, aiosmtplib.SMTPResponseException):
            parts.append(exc.message)
        elif str(exc):
            parts.append(str(exc))
    return " ".join(" ".join(parts).split())


def sender_address(settings: Settings) -> str:
    """The bare address in MAIL_FROM (`pyauth <no-reply@example.com>` → `no-reply@example.com`): the
    envelope sender."""
    address = parseaddr(settings.MAIL_FROM)[1]
    if "@" not in address or "\r" in settings.MAIL_FROM or "\n" in settings.MAIL_FROM:
        raise MailConfigurationError("MAIL_FROM must be an address, e.g. 'pyauth <no-reply@example.com>'")
    return address


def build_backend(settings: Settings) -> MailBackend:
    """The backend MAIL_BACKEND names, or MailConfigurationError if the settings cannot work."""
    sender_address(settings)
    if settings.MAIL_BACKEND == "smtp":
        return SmtpBackend(settings)
    if settings.ENVIRONMENT == "production":
        raise MailConfigurationError(
            "MAIL_BACKEND=console prints mail bodies (with their tokens) to the logs; "
            "production needs MAIL_BACKEND=smtp"
        )
    return ConsoleBackend()
