"""open grant types: a client's grant types are the ones the grant registry serves, not a fixed list

The check that held `oauth_clients.grant_types` to four names is dropped: adding a grant to the token
endpoint is one handler and its registration line, and the admin API checks a client's grant types against
that registry (`app.admin.clients`).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 02:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_oauth_clients_known_grant_types"), "oauth_clients", type_="check")


def downgrade() -> None:
    # Grant types the old check does not know are removed from the clients first, so it can hold again.
    op.execute(
        "UPDATE oauth_clients SET grant_types = ARRAY(SELECT g FROM unnest(grant_types) AS g WHERE g IN "
        "('authorization_code', 'refresh_token', 'client_credentials', 'password'))::varchar[]"
    )
    op.create_check_constraint(
        op.f("ck_oauth_clients_known_grant_types"),
        "oauth_clients",
        "grant_types <@ ARRAY['authorization_code', 'refresh_token', 'client_credentials', "
        "'password']::varchar[]",
    )
