"""Queries on `mail_outbox`: adding a mail and claiming the next due one. Functions flush or execute;
the caller commits (the request for `enqueue`, the worker's per-mail transaction for a claim)."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.mail.models import OutboxMail


async def add_mail(
    db: AsyncSession,
    *,
    kind: str | None,
    recipient: str,
    subject: str,
    body: str,
    html_body: str | None,
    now: datetime,
) -> uuid.UUID:
    """A new outbox row, first due at `now`; its id."""
    mail = OutboxMail(
        id=uuid.uuid4(),
        kind=kind,
        recipient=recipient,
        subject=subject,
        body=body,
        html_body=html_body,
        created_at=now,
        attempts=0,
        next_attempt_at=now,
    )
    db.add(mail)
    await db.flush()
    return mail.id


async def claim_next_due(db: AsyncSession, now: datetime) -> OutboxMail | None:
    """The longest-due unsent, unfailed mail, locked until the transaction ends; rows another worker
    holds are skipped, so no two workers claim the same mail."""
    mail: OutboxMail | None = await db.scalar(
        select(OutboxMail)
        .where(
            OutboxMail.sent_at.is_(None),
            OutboxMail.failed_at.is_(None),
            OutboxMail.next_attempt_at <= now,
        )
        .order_by(OutboxMail.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return mail
