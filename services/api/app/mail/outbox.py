"""The outbox: `enqueue()` is how every domain sends mail.

It only adds a row to `mail_outbox` in the caller's session and flushes: the mail exists if and only if
the change that caused it commits, and a request never waits on, or fails because of, a mail server.
The worker (`app.mail.worker`) delivers the rows later and turns each into a message with
`build_message()`.
"""

import uuid
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from sqlalchemy.ext.asyncio import AsyncSession

from app.mail import repository
from app.mail.models import MAX_KIND_LENGTH, MAX_RECIPIENT_LENGTH, MAX_SUBJECT_LENGTH, OutboxMail


class InvalidOutgoingMail(ValueError):
    """The caller asked for a mail that cannot be sent as given (not one address, a header with a line
    break, a field too long). A bug in the caller, not a client error: recipients reach `enqueue()`
    already canonicalised, and subjects are written by pyauth."""


def _check_header(name: str, value: str, max_length: int) -> None:
    if not value or len(value) > max_length:
        raise InvalidOutgoingMail(f"{name} must have 1 to {max_length} characters")
    if "\r" in value or "\n" in value:
        raise InvalidOutgoingMail(f"{name} must not contain a line break")


def _check_recipient(to: str) -> None:
    _check_header("to", to, MAX_RECIPIENT_LENGTH)
    try:
        address = Address(addr_spec=to)
    except ValueError:
        raise InvalidOutgoingMail("to must be one email address") from None
    if not address.domain:
        raise InvalidOutgoingMail("to must be one email address")


def check_outgoing(*, to: str, subject: str, now: datetime, kind: str | None = None) -> None:
    """What `enqueue` refuses (`InvalidOutgoingMail`), for a mail that a statement of its own queues (a
    registration's, `app.account.repository.register`)."""
    _check_recipient(to)
    _check_header("subject", subject, MAX_SUBJECT_LENGTH)
    if kind is not None:
        _check_header("kind", kind, MAX_KIND_LENGTH)
    if now.tzinfo is None:
        raise InvalidOutgoingMail("now must be timezone-aware")


async def enqueue(
    db: AsyncSession,
    *,
    to: str,
    subject: str,
    body: str,
    now: datetime,
    kind: str | None = None,
    html: str | None = None,
) -> uuid.UUID:
    """Queue a mail in the caller's transaction (flush only) and return its outbox id.

    `to` is one address, `subject` one line, `body` plain text, `html` (optional) the same content as an
    HTML alternative; `now` (timezone-aware) is when it was
    written and when it is first due. `kind` is an optional label for logs, never sent.
    """
    check_outgoing(to=to, subject=subject, now=now, kind=kind)
    return await repository.add_mail(
        db, kind=kind, recipient=to, subject=subject, body=body, html_body=html, now=now
    )


def recipient_domain(address: str) -> str:
    """The part after the last `@`: what log lines may say about a recipient."""
    return address.rpartition("@")[2]


def build_message(mail: OutboxMail, mail_from: str) -> EmailMessage:
    """The RFC 5322 message for an outbox row. `Message-ID` and `Date` come from the row, so a retry
    sends the same message and a receiving system can recognise a duplicate."""
    sender_domain = recipient_domain(parseaddr(mail_from)[1]) or "localhost"
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = f"<{mail.id}@{sender_domain}>"
    # RFC 3834: an automatic message, so vacation responders and the like do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body)
    if mail.html_body is not None:
        # multipart/alternative, text first (RFC 2046 section 5.1.4): a client shows the last part it can.
        message.add_alternative(mail.html_body, subtype="html")
    return message
