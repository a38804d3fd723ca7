"""clients: the OAuth client registry, hashed client secrets, the built-in client, sessions bound to a client

The built-in public client `pyauth` is seeded here with the password and refresh_token grants: token
requests without client credentials are made for it, so every caller from before the registry keeps
working, and every existing session belongs to it.

The application role gets its rights on the new tables from the default privileges of migration 0010,
and again from the grants every `alembic upgrade` applies (migrations/env.py, app/core/grants.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("client_type", sa.String(length=16), nullable=False),
        sa.Column(
            "redirect_uris", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "post_logout_redirect_uris",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("grant_types", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column(
            "scopes", postgresql.ARRAY(sa.String(length=128)), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("first_party", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "id_token_signed_response_alg",
            sa.String(length=16),
            server_default=sa.text("'ES256'"),
            nullable=False,
        ),
        sa.Column("access_token_audience", sa.String(length=256), nullable=True),
        sa.Column("access_token_ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("refresh_token_ttl_seconds", sa.Integer(), nullable=True),
        sa.Column("is_disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "client_type IN ('confidential', 'public')", name=op.f("ck_oauth_clients_known_type")
        ),
        sa.CheckConstraint(
            "grant_types <@ ARRAY['authorization_code', 'refresh_token', 'client_credentials', "
            "'password']::varchar[]",
            name=op.f("ck_oauth_clients_known_grant_types"),
        ),
        sa.CheckConstraint(
            "id_token_signed_response_alg IN ('ES256', 'RS256')",
            name=op.f("ck_oauth_clients_known_id_token_alg"),
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_oauth_clients")),
    )
    op.create_table(
        "oauth_client_secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_client_secrets_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_client_secrets")),
    )
    op.create_index(
        op.f("ix_oauth_client_secrets_client_id"), "oauth_client_secrets", ["client_id"], unique=False
    )
    op.execute(
        "INSERT INTO oauth_clients (client_id, name, client_type, grant_types, first_party) "
        "VALUES ('pyauth', 'pyauth (built-in)', 'public', ARRAY['password', 'refresh_token'], true)"
    )
    # Every existing session is the built-in client's: the default fills them, then stays for rows that
    # name no client.
    op.add_column(
        "auth_sessions",
        sa.Column("client_id", sa.String(length=64), server_default=sa.text("'pyauth'"), nullable=False),
    )
    op.create_foreign_key(
        op.f("fk_auth_sessions_client_id_oauth_clients"),
        "auth_sessions",
        "oauth_clients",
        ["client_id"],
        ["client_id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_auth_sessions_client_id"), "auth_sessions", ["client_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_sessions_client_id"), table_name="auth_sessions")
    op.drop_constraint(op.f("fk_auth_sessions_client_id_oauth_clients"), "auth_sessions", type_="foreignkey")
    op.drop_column("auth_sessions", "client_id")
    op.drop_index(op.f("ix_oauth_client_secrets_client_id"), table_name="oauth_client_secrets")
    op.drop_table("oauth_client_secrets")
    op.drop_table("oauth_clients")
