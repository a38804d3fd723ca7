"""Alembic environment: async migrations through pyauth's own settings and engine factory.

Every run takes a transaction-scoped Postgres advisory lock first, so two migrators started at once
run one after the other; the second finds the schema at head and does nothing.
"""

import asyncio
import logging

from alembic import context
from sqlalchemy import Connection, text

from app.core.config import get_settings
from app.core.database import MIGRATION_LOCK_ID, build_engine
from app.core.logging import configure_logging
from app.core.registry import Base

log = logging.getLogger("pyauth.migrate")


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def run_async_migrations() -> None:
    settings = get_settings()
    engine = build_engine(settings)
    log.info("migrating %s", settings.database_target)
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
