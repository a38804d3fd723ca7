"""Reading what pyauth mailed: the outbox rows, and the token inside a mailed link."""

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

LINK = re.compile(r"(https?://\S+[?&]token=([A-Za-z0-9_\-]+))")


@dataclass(frozen=True)
class SentMail:
    subject: str
    body: str

    @property
    def link(self) -> str:
        match = LINK.search(self.body)
        assert match, f"no link in {self.subject!r}"
        return match.group(1)

    @property
    def token(self) -> str:
        match = LINK.search(self.body)
        assert match, f"no link in {self.subject!r}"
        return match.group(2)


async def mails_to(db: AsyncSession, address: str, kind: str | None = None) -> list[SentMail]:
    """Every mail queued for `address` (of one kind, if given). Mails queued at the same instant of the
    test clock have no order among them, so ask for the kind you mean."""
    rows = await db.execute(
        text(
            "SELECT subject, body FROM mail_outbox"
            " WHERE recipient = :to AND (CAST(:kind AS text) IS NULL OR kind = :kind)"
            " ORDER BY created_at"
        ),
        {"to": address, "kind": kind},
    )
    return [SentMail(subject, body) for subject, body in rows.all()]


async def last_mail_to(db: AsyncSession, address: str, kind: str) -> SentMail:
    mails = await mails_to(db, address, kind)
    assert len(mails) >= 1, f"no {kind} mail was queued for {address}"
    return mails[-1]
