"""users.roles: 'user' and 'admin'

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "roles",
            postgresql.ARRAY(sa.String(length=32)),
            server_default=sa.text("'{user}'"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_users_known_roles"), "users", "roles <@ ARRAY['user', 'admin']::varchar[]"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_known_roles"), "users", type_="check")
    op.drop_column("users", "roles")
