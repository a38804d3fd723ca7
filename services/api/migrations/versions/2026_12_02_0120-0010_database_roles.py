"""least-privilege rights for the application role; audit_events append-only

The migrator owns the schema; the api and worker connect as DATABASE_URL's role, which gets exactly what
they use: rows of every table to read and write, audit_events only to read and append (no UPDATE, DELETE
or TRUNCATE), and the version table only to read (readiness). Default privileges give tables that later
migrations create the same rights; a later append-only table revokes what it must not have.

When the migrator and the application are one role (DATABASE_URL alone, e.g. a single-role development
database), there is nothing to grant: the owner keeps every right, and a warning says so.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:20:00
"""

import logging
from collections.abc import Sequence

from alembic import context, op
from sqlalchemy import text

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("pyauth.migrate")

APPEND_ONLY = ("audit_events",)
READ_ONLY = ("alembic_version",)


def _app_role() -> str | None:
    """DATABASE_URL's role, quoted; None when it is the migrator itself."""
    role = context.config.attributes.get("app_role")
    bind = op.get_bind()
    if not role or role == bind.execute(text("SELECT current_user")).scalar():
        log.warning("DATABASE_URL's role runs the migrations: the application keeps the owner's rights")
        return None
    exists = bind.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).scalar()
    if not exists:
        raise RuntimeError(f"the application role {role!r} (DATABASE_URL's user) does not exist")
    return bind.dialect.identifier_preparer.quote(role)


def _tables() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    )
    return [row[0] for row in rows]


def upgrade() -> None:
    role = _app_role()
    if role is None:
        return
    quote = op.get_bind().dialect.identifier_preparer.quote
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
    for table in _tables():
        if table in APPEND_ONLY:
            rights = "SELECT, INSERT"
        elif table in READ_ONLY:
            rights = "SELECT"
        else:
            rights = "SELECT, INSERT, UPDATE, DELETE"
        op.execute(f"GRANT {rights} ON TABLE {quote(table)} TO {role}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    # Tables and sequences the migrator creates later: the same rights, without a grant in each migration.
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}")


def downgrade() -> None:
    role = _app_role()
    if role is None:
        return
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {role}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {role}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
