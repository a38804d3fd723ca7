"""session scopes: the scopes a session's tokens were granted

`auth_sessions.scopes` keeps what the login granted, so that a refresh grants the same scopes or fewer,
never more (RFC 6749 §6). Sessions from before it are given their client's scopes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "auth_sessions",
        sa.Column(
            "scopes", postgresql.ARRAY(sa.String(length=128)), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.execute(
        "UPDATE auth_sessions AS s SET scopes = c.scopes FROM oauth_clients AS c WHERE c.client_id = s.client_id"
    )


def downgrade() -> None:
    op.drop_column("auth_sessions", "scopes")
