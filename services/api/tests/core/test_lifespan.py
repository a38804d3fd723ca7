"""The lifespan: `SELECT 1` at startup, `engine.dispose()` at shutdown, and a bounded, clear failure
when the database cannot be reached."""

import logging
import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import DatabaseUnreachable
from app.main import create_app
from tests.conftest import make_settings


async def _backends(engine: AsyncEngine, application_name: str) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            )
        )


async def test_startup_runs_select_1_and_shutdown_disposes_the_pool(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"lifespan-{uuid.uuid4().hex[:12]}"
    app = create_app(make_settings(DB_APPLICATION_NAME=name))
    caplog.set_level(logging.INFO, logger="pyauth")
    async with app.router.lifespan_context(app):
        assert "answered SELECT 1" in caplog.text
        assert await _backends(engine, name) == 1, "the startup check's connection stays pooled"
    assert "engine disposed" in caplog.text
    assert await _backends(engine, name) == 0, "dispose() closed every pooled connection"


async def test_startup_against_an_unreachable_database_fails_clearly_within_the_bound(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-never-logged"
    closed = settings.database_url.set(port=1, password=password).render_as_string(hide_password=False)
    app = create_app(make_settings(DATABASE_URL=closed, DB_STARTUP_TIMEOUT=1.5))
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as raised:
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover - startup must not succeed
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert f"{settings.database_url.host}:1/{settings.database_url.database}" in message
    assert password not in message
    assert password not in caplog.text
    assert 1.5 <= elapsed < 10
    assert any(
        record.levelname == "ERROR" and "startup failed" in record.message for record in caplog.records
    )
