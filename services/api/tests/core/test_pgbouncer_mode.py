"""DB_PGBOUNCER (PgBouncer in transaction mode, compose.swarm.yaml): no statement cache in asyncpg or
SQLAlchemy, SQLAlchemy's prepared statements named uniquely, and the raw driver statements of the hot
paths still working, against the real test database."""

import re

from sqlalchemy import text

from app.core.config import Settings
from app.core.database import build_engine, build_sessionmaker, driver_connection


def test_pgbouncer_mode_is_off_by_default(settings: Settings) -> None:
    assert settings.DB_PGBOUNCER is False


async def test_pgbouncer_mode_caches_no_statement_and_names_each_uniquely(settings: Settings) -> None:
    engine = build_engine(settings.model_copy(update={"DB_PGBOUNCER": True, "DB_POOL_SIZE": 1}))
    try:
        async with engine.connect() as connection:
            for _ in range(3):
                assert await connection.scalar(text("SELECT 1")) == 1
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            assert raw._stmt_cache.get_max_size() == 0  # asyncpg's own cache: off
            names = await connection.scalars(
                text("SELECT name FROM pg_prepared_statements WHERE name LIKE '__asyncpg_%'")
            )
            # SQLAlchemy's statement (this query's own; asyncpg deallocates the earlier, uncached ones),
            # named by a uuid, unique across clients: not asyncpg's per-connection `__asyncpg_stmt_1__`.
            named = list(names)
            assert named
            assert all(re.fullmatch(r"__asyncpg_[0-9a-f]{32}__", name) for name in named), named
        sessionmaker = build_sessionmaker(engine)
        for _ in range(3):  # the hot paths' raw statements, unnamed with the cache off
            async with driver_connection(sessionmaker) as raw_connection:
                assert await raw_connection.fetchval("SELECT $1::int + 1", 41) == 42
    finally:
        await engine.dispose()
