"""What the mail tests share: a client for the test SMTP server, and steps on the outbox."""

import email
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from typing import Any, cast

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import ManualClock
from app.mail.models import OutboxMail
from app.mail.outbox import enqueue


@dataclass(frozen=True)
class ReceivedMail:
    """One mail as the SMTP server received it: the envelope and the raw message."""

    mail_from: str
    rcpt_tos: list[str]
    data: str
    login: str | None
    tls: str | None = None  # the TLS version it arrived over; None: plain SMTP

    @property
    def message(self) -> EmailMessage:
        return email.message_from_string(self.data, policy=policy.default)

    @property
    def body(self) -> str:
        """The decoded text, with the wire's CRLF line ends read back as `\\n`."""
        text = self.message.get_body(preferencelist=("plain",))
        assert text is not None, "no text part"
        return str(text.get_content()).replace("\r\n", "\n")


# httpx builds a TLS context (loading the CA bundle, ~30 ms of CPU) for every client unless given one; the
# control port speaks plain HTTP, so all its clients share this one.
_CONTROL_TLS = ssl.create_default_context()


class SmtpSink:
    """The test SMTP server and its control port."""

    def __init__(
        self, host: str, smtp_port: int, control_url: str, *, starttls_port: int, tls_port: int
    ) -> None:
        self.host = host
        self.smtp_port = smtp_port
        self.starttls_port = starttls_port
        self.tls_port = tls_port
        self.control_url = control_url

    async def _call(self, method: str, path: str) -> Any:
        async with httpx.AsyncClient(base_url=self.control_url, timeout=10, verify=_CONTROL_TLS) as client:
            response = await client.request(method, path)
        response.raise_for_status()
        return response.json()

    async def received(self) -> list[ReceivedMail]:
        return [ReceivedMail(**entry) for entry in await self._call("GET", "/messages")]

    async def state(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._call("GET", "/state"))

    async def ca_pem(self) -> str:
        """The private CA that signed the TLS listeners' certificate (new at every start of the server)."""
        return str((await self._call("GET", "/ca"))["pem"])

    async def reset(self) -> None:
        await self._call("POST", "/reset")

    async def accept(self) -> None:
        await self._call("POST", "/accept")

    async def refuse(self, code: int) -> None:
        await self._call("POST", f"/refuse/{code}")

    async def slow(self, seconds: float) -> None:
        await self._call("POST", f"/slow/{seconds}")

    async def down(self) -> None:
        await self._call("POST", "/down")

    async def up(self) -> None:
        await self._call("POST", "/up")

    def settings(self, **overrides: object) -> dict[str, object]:
        """Settings overrides that deliver to this server, in plain SMTP."""
        return {
            "MAIL_BACKEND": "smtp",
            "MAIL_FROM": "pyauth tests <no-reply@pyauth.test>",
            "SMTP_HOST": self.host,
            "SMTP_PORT": self.smtp_port,
            "SMTP_SECURITY": "none",
            "SMTP_TIMEOUT": 5,
            **overrides,
        }

    def starttls_settings(self, **overrides: object) -> dict[str, object]:
        """Settings overrides that deliver to the listener that requires STARTTLS."""
        return self.settings(SMTP_PORT=self.starttls_port, SMTP_SECURITY="starttls", **overrides)

    def tls_settings(self, **overrides: object) -> dict[str, object]:
        """Settings overrides that deliver to the implicit-TLS listener."""
        return self.settings(SMTP_PORT=self.tls_port, SMTP_SECURITY="tls", **overrides)


def address(prefix: str = "user", domain: str = "example.org") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@{domain}"


async def queue(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    *,
    to: str | None = None,
    subject: str = "Confirm your email address",
    body: str = "Open https://pyauth.test/auth/verify?token=abc123 to confirm.\n",
    kind: str | None = None,
) -> uuid.UUID:
    """Enqueue one mail and commit, as a request would."""
    async with sessionmaker.begin() as session:
        return await enqueue(
            session, to=to or address(), subject=subject, body=body, now=clock.now(), kind=kind
        )


async def outbox_row(sessionmaker: async_sessionmaker[AsyncSession], mail_id: uuid.UUID) -> OutboxMail:
    async with sessionmaker() as session:
        row = await session.get(OutboxMail, mail_id)
        assert row is not None, f"outbox row {mail_id} is gone"
        return row


async def outbox_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[OutboxMail]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(OutboxMail).order_by(OutboxMail.created_at))).all())


def later(clock: ManualClock, until: datetime) -> None:
    """Move the clock to `until` (or leave it, if it is already later)."""
    if until > clock.now():
        clock.advance(until - clock.now())
