"""signing keys published ahead of use: `signing_keys.active_from`

A key made by a rotation is in the JWKS from `created_at` but signs only from `active_from`, so that relying
parties that cache the JWKS already hold it when its first token arrives; the key it replaces gets that same
instant as its `retired_at`. Existing keys were active from their creation.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("signing_keys", sa.Column("active_from", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE signing_keys SET active_from = created_at")
    op.alter_column("signing_keys", "active_from", nullable=False)


def downgrade() -> None:
    # A key still waiting for its turn would sign at once under the old code; that is all that is lost.
    op.drop_column("signing_keys", "active_from")
