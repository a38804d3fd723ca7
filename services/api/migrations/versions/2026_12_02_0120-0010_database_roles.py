"""least-privilege rights for the application role; audit_events append-only

The migrator owns the schema; the api and worker connect as DATABASE_URL's role, which gets exactly what
they use (app/core/grants.py): rows of every table to read and write, audit_events only to read and append
(no UPDATE, DELETE or TRUNCATE), the version table only to read. Default privileges give tables of later
migrations the same rights, and every later `alembic upgrade` applies them again (migrations/env.py).

The role's name is DATABASE_URL's user (the `app_role` attribute env.py sets), never written here. When the
migrator and the application are one role there is nothing to grant: the owner keeps every right.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:20:00
"""

from collections.abc import Sequence

from alembic import context, op

from app.core.grants import grant_application_rights, revoke_application_rights

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    grant_application_rights(op.get_bind(), context.config.attributes.get("app_role"))


def downgrade() -> None:
    revoke_application_rights(op.get_bind(), context.config.attributes.get("app_role"))
