"""retention: indexes for pruning expired rows in bounded batches; mail bodies blanked once finished

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Deleting a session cascades to its refresh tokens: one index lookup instead of a table scan each.
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_index(
        "ix_mail_outbox_finished",
        "mail_outbox",
        ["created_at"],
        postgresql_where=sa.text("sent_at IS NOT NULL OR failed_at IS NOT NULL"),
    )
    # Mails sent or failed before this revision still hold their links: blank them as the worker now does.
    op.execute(
        "UPDATE mail_outbox SET body = '' WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND body <> ''"
    )


def downgrade() -> None:
    # The blanked bodies are gone for good; only the indexes are undone.
    op.drop_index("ix_mail_outbox_finished", table_name="mail_outbox")
    op.drop_index("ix_refresh_tokens_session_id", table_name="refresh_tokens")
