"""The pool never hands out a connection the server has closed, and finds out without a round trip, so
that DB_POOL_PRE_PING can stay off (it costs three round trips per checkout with asyncpg)."""

import asyncio

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import build_engine


async def _pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def _count_statements(engine: AsyncEngine) -> list[str]:
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


def test_pre_ping_is_off_by_default(settings: Settings) -> None:
    assert settings.DB_POOL_PRE_PING is False


async def test_a_connection_closed_by_the_server_is_replaced_at_checkout(
    settings: Settings, engine: AsyncEngine
) -> None:
    one = build_engine(settings.model_copy(update={"DB_POOL_SIZE": 1, "DB_MAX_OVERFLOW": 0}))
    try:
        first = await _pid(one)
        await _terminate(engine, first)
        await asyncio.sleep(0.3)  # the event loop reads the server's goodbye

        statements = _count_statements(one)
        second = await _pid(one)

        assert second != first
        assert statements == ["SELECT pg_backend_pid()"]  # no ping was needed to find out
    finally:
        await one.dispose()
