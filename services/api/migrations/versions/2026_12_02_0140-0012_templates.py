"""templates: an HTML alternative for each outbox mail; the language of each user's mails

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mail_outbox", sa.Column("html_body", sa.Text(), nullable=True))
    # Existing accounts get English, the language every mail had before this revision.
    op.add_column(
        "users",
        sa.Column("locale", sa.String(length=16), server_default=sa.text("'en'"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("users", "locale")
    op.drop_column("mail_outbox", "html_body")
