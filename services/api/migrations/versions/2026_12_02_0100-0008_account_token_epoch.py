"""account tokens end with a password change: users.password_changed_at

A mailed token (verification, reset, email change) created before this instant is refused. NULL means
the password was never changed or reset since the account was created. Existing accounts get the time of
their last `password.changed` or `password.reset` audit event, so that links issued before a change that
happened before this migration (when such links outlived it) are refused from now on.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE users SET password_changed_at = changes.last_change
        FROM (
            SELECT user_id, max(occurred_at) AS last_change FROM audit_events
            WHERE event IN ('password.changed', 'password.reset') AND user_id IS NOT NULL
            GROUP BY user_id
        ) AS changes
        WHERE users.id = changes.user_id
        """
    )


def downgrade() -> None:
    op.drop_column("users", "password_changed_at")
