"""login throttling reserved before the hash; known devices with their own counters

`login_throttles` gains a `kind` (`login` or `reauth`) in its primary key, so that the current-password
check of a signed-in user counts apart from anonymous sign-ins; existing rows are login counters.
`login_devices` holds the digests of device tokens, each with its own failure counter.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "login_throttles",
        sa.Column("kind", sa.String(length=16), server_default="login", nullable=False),
    )
    op.drop_constraint(op.f("pk_login_throttles"), "login_throttles", type_="primary")
    op.create_primary_key(op.f("pk_login_throttles"), "login_throttles", ["email", "kind"])
    op.create_table(
        "login_devices",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_login_devices_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_login_devices")),
    )
    op.create_index(op.f("ix_login_devices_user_id"), "login_devices", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_login_devices_user_id"), table_name="login_devices")
    op.drop_table("login_devices")
    op.execute("DELETE FROM login_throttles WHERE kind <> 'login'")
    op.drop_constraint(op.f("pk_login_throttles"), "login_throttles", type_="primary")
    op.create_primary_key(op.f("pk_login_throttles"), "login_throttles", ["email"])
    op.drop_column("login_throttles", "kind")
