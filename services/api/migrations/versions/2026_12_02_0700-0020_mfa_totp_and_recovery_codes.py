"""second factors: TOTP authenticators, recovery codes, the mfa_token of a login's second step

`mfa_totp` (one per user, secret encrypted with the key-encryption key, the last accepted time step),
`mfa_recovery_codes` (SHA-256 digests), `mfa_tokens` (digests of the single-use tickets of a password
login that needs a second factor). Sessions record how their login authenticated (`amr`), so refreshed
tokens keep it; existing sessions were password logins. `login_throttles.kind` has no check, so the new
`mfa` kind needs no change there.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mfa_totp",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mfa_totp_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_mfa_totp")),
    )
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mfa_recovery_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_mfa_recovery_codes")),
    )
    op.create_index(op.f("ix_mfa_recovery_codes_user_id"), "mfa_recovery_codes", ["user_id"])
    op.create_table(
        "mfa_tokens",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("device_token_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("amr", postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column(
            "scopes", postgresql.ARRAY(sa.String(length=128)), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mfa_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_mfa_tokens_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_mfa_tokens")),
    )
    op.create_index(op.f("ix_mfa_tokens_user_id"), "mfa_tokens", ["user_id"])
    op.create_index("ix_mfa_tokens_expires_at", "mfa_tokens", ["expires_at"])
    op.add_column(
        "auth_sessions",
        sa.Column(
            "amr", postgresql.ARRAY(sa.String(length=16)), server_default=sa.text("'{pwd}'"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("auth_sessions", "amr")
    op.drop_index("ix_mfa_tokens_expires_at", table_name="mfa_tokens")
    op.drop_index(op.f("ix_mfa_tokens_user_id"), table_name="mfa_tokens")
    op.drop_table("mfa_tokens")
    op.drop_index(op.f("ix_mfa_recovery_codes_user_id"), table_name="mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_table("mfa_totp")
    op.execute("DELETE FROM login_throttles WHERE kind = 'mfa'")
