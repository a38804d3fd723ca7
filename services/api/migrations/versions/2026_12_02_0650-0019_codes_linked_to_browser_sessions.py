"""authorization codes name the browser session they came from; both session links indexed

`browser_session_id` ties a code to the SSO browser session whose sign-in it carries, so that
RP-initiated logout ends exactly the client sessions that browser session started (before, they were
matched by user, client and `auth_time`). Both session columns are indexed: deleting a session (retention)
sets them to NULL, which without an index scans every code.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 06:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("authorization_codes", sa.Column("browser_session_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_authorization_codes_browser_session_id_browser_sessions"),
        "authorization_codes",
        "browser_sessions",
        ["browser_session_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_authorization_codes_browser_session_id"), "authorization_codes", ["browser_session_id"]
    )
    op.create_index(op.f("ix_authorization_codes_session_id"), "authorization_codes", ["session_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_authorization_codes_session_id"), table_name="authorization_codes")
    op.drop_index(op.f("ix_authorization_codes_browser_session_id"), table_name="authorization_codes")
    op.drop_constraint(
        op.f("fk_authorization_codes_browser_session_id_browser_sessions"),
        "authorization_codes",
        type_="foreignkey",
    )
    op.drop_column("authorization_codes", "browser_session_id")
