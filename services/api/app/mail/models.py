"""The `mail_outbox` table: one row per mail to send, written in the transaction of the change that
caused it. After delivery (`sent_at`) or the last failed attempt (`failed_at`) its body is blanked and the
row is kept for RETENTION_MAIL_SECONDS, then deleted by the retention pass."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base

MAX_RECIPIENT_LENGTH = 320
MAX_SUBJECT_LENGTH = 255
MAX_KIND_LENGTH = 40
MAX_ERROR_LENGTH = 200
# What `body` holds once the mail is sent or has failed for good: its links are never needed again.
BLANKED_BODY = ""


class OutboxMail(Base):
    __tablename__ = "mail_outbox"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # What the mail is for (`verify_email`, `reset_password`…): for log lines and queries, never sent.
    kind: Mapped[str | None] = mapped_column(String(MAX_KIND_LENGTH))
    recipient: Mapped[str] = mapped_column(String(MAX_RECIPIENT_LENGTH), nullable=False)
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT_LENGTH), nullable=False)
    # Holds links with single-use tokens: never logged (except by the console backend, for development),
    # and blanked once the mail is sent or failed for good.
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # The text/html alternative of `body` (None: a text-only mail); the same links, so the same care: set
    # to None with the body.
    html_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the server refused the mail for good or MAIL_MAX_ATTEMPTS was reached.
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The class and SMTP reply of the last failure, cut short; never a credential or the body.
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))

    __table_args__ = (
        # The worker's one query: the pending mails that are due, oldest first.
        Index(
            "ix_mail_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
        # The retention pass: finished mails, oldest first.
        Index(
            "ix_mail_outbox_finished",
            "created_at",
            postgresql_where=text("sent_at IS NOT NULL OR failed_at IS NOT NULL"),
        ),
    )
