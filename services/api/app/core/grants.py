"""The application role's rights on the schema: what the api and worker may do, and no more.

The migrator owns every table; DATABASE_URL's role gets the rows of the tables the app uses, and
audit_events only to read and append, so a compromised API cannot rewrite its own audit trail. Migration
0010 grants these rights first; after that, every `alembic upgrade` applies them again (migrations/env.py),
so a database that reached head some other way, or a renamed application role, still ends up right. A new
append-only table is named in APPEND_ONLY.
"""

import logging

from sqlalchemy import Connection, text

log = logging.getLogger("pyauth.migrate")

# The revision that introduced these rights: from it on, every migration run applies them.
GRANTS_REVISION = "0010"
APPEND_ONLY = frozenset({"audit_events"})
READ_ONLY = frozenset({"alembic_version"})  # the readiness check reads the schema's revision


def application_role(connection: Connection, role: str | None) -> str | None:
    """The role to grant to, quoted; None when it is the migrator itself (one role owns and uses the
    schema: nothing to grant, and a warning)."""
    if not role or role == connection.execute(text("SELECT current_user")).scalar():
        log.warning("DATABASE_URL's role runs the migrations: the application keeps the owner's rights")
        return None
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
    if not exists:
        raise RuntimeError(f"the application role {role!r} (DATABASE_URL's user) does not exist")
    return connection.dialect.identifier_preparer.quote(role)


def grant_application_rights(connection: Connection, role: str | None) -> None:
    """Exactly the application's rights on every table of the public schema, and the same by default on
    tables the migrator creates later. Idempotent."""
    quoted = application_role(connection, role)
    if quoted is None:
        return
    quote = connection.dialect.identifier_preparer.quote
    tables = connection.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    ).scalars()
    statements = [f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}"]
    for table in tables:
        if table in APPEND_ONLY:
            rights = "SELECT, INSERT"
        elif table in READ_ONLY:
            rights = "SELECT"
        else:
            rights = "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {rights} ON TABLE {quote(table)} TO {quoted}")
    statements += [
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {quoted}",
    ]
    for statement in statements:
        connection.execute(text(statement))


def revoke_application_rights(connection: Connection, role: str | None) -> None:
    """Undo grant_application_rights (migration 0010's downgrade)."""
    quoted = application_role(connection, role)
    if quoted is None:
        return
    for statement in (
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {quoted}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {quoted}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {quoted}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}",
    ):
        connection.execute(text(statement))
