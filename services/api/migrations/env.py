"""Alembic environment: async migrations through pyauth's own settings and engine factory.

Every run takes a transaction-scoped Postgres advisory lock first, so two migrators started at once
run one after the other; the second finds the schema at head and does nothing.

Migrations connect as the schema owner (MIGRATION_DATABASE_URL; unset: DATABASE_URL). The application's
role, which migration 0010 grants its rights to, is DATABASE_URL's user: the `app_role` attribute, which
callers that hand in their own connection (the tests) may set instead.
"""

import asyncio
import logging

from alembic import context
from sqlalchemy import Connection, text

from app.core.config import get_settings
from app.core.database import MIGRATION_LOCK_ID, build_engine
from app.core.grants import GRANTS_REVISION, grant_application_rights
from app.core.logging import configure_logging
from app.models import Base

log = logging.getLogger("pyauth.migrate")


def run_migrations(connection: Connection) -> None:
    attributes = context.config.attributes
    if not attributes.get("app_role"):
        attributes["app_role"] = get_settings().database_url.username
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()
        if _rights_apply():
            grant_application_rights(connection, attributes["app_role"])


def _rights_apply() -> bool:
    """Whether the schema is at or past the revision that brought the application role's rights: then
    every run applies them again, so a database that reached it without them (or a renamed role) is fixed."""
    script = context.script
    return any(
        revision.revision == GRANTS_REVISION
        for head in context.get_context().get_current_heads()
        for revision in script.iterate_revisions(head, "base")
    )


async def run_async_migrations() -> None:
    settings = get_settings()
    url = settings.migration_database_url
    engine = build_engine(
        settings.model_copy(update={"DATABASE_URL": url.render_as_string(hide_password=False)})
    )
    log.info("migrating %s:%s/%s as %s", url.host, url.port or 5432, url.database, url.username)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("pyauth migrations run online only: `alembic upgrade head`")

if context.config.attributes.get("configure_logging", True):
    configure_logging(get_settings())
connection = context.config.attributes.get("connection")
if connection is None:
    asyncio.run(run_async_migrations())
else:
    run_migrations(connection)
