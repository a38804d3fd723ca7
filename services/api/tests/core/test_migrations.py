"""Migrations: two migrators at once do not collide, the models match the migrations, and every
revision downgrades cleanly.

`alembic` runs as a process of its own, as the migrate service runs it, where the command is the subject
(two migrators at once, the rights an upgrade at head gives back); where the subject is what the
revisions do (downgrading, upgrading data), they run in this process on the scratch database, as
tests/conftest.py migrates the test database: the same env.py and revisions, without a second of
interpreter start and imports per step."""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings
from app.core.database import MIGRATION_LOCK_ID
from app.health.service import SERVICE_ROOT, alembic_config, schema_head
from app.models import Base
from tests.conftest import admin_database_url


@dataclass(frozen=True)
class Scratch:
    """A database's URLs: the application role's and the admin's, who migrates it (as in conftest)."""

    app_url: str
    admin_url: str


@pytest.fixture
async def scratch_database(settings: Settings) -> AsyncIterator[Scratch]:
    """A fresh, empty database, dropped afterwards."""
    name = f"pyauth_migrate_{uuid.uuid4().hex[:8]}_test"
    admin = create_async_engine(
        admin_database_url("postgres", settings.DATABASE_URL), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield Scratch(
            app_url=settings.database_url.set(database=name).render_as_string(hide_password=False),
            admin_url=admin_database_url(name, settings.DATABASE_URL).render_as_string(hide_password=False),
        )
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _alembic(scratch: Scratch, *args: str) -> tuple[int, str]:
    """`alembic` as the migrate service runs it: as the admin, granting the application role its rights."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        *args,
        cwd=SERVICE_ROOT,
        env={
            **os.environ,
            "DATABASE_URL": scratch.app_url,
            "MIGRATION_DATABASE_URL": scratch.admin_url,
            "KEY_ENCRYPTION_KEY": "x" * 40,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def migrate_here(scratch: Scratch, action: str, target: str) -> None:
    """`alembic <action> <target>` (upgrade or downgrade) in this process on the scratch database, as the
    admin, granting DATABASE_URL's role its rights as the migrate service does."""
    engine = create_async_engine(scratch.admin_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_alembic, action, target, make_url(scratch.app_url).username)
    finally:
        await engine.dispose()


def _run_alembic(connection: Connection, action: str, target: str, app_role: str | None) -> None:
    config = alembic_config()
    config.attributes.update(connection=connection, configure_logging=False, app_role=app_role)
    {"upgrade": command.upgrade, "downgrade": command.downgrade}[action](config, target)


async def test_two_migrators_started_at_once_wait_for_each_other(scratch_database: Scratch) -> None:
    """Hold the migration lock, start two migrators, see both queue on it, then let them go: both
    succeed and the schema is at head once."""
    engine = create_async_engine(scratch_database.admin_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            await holder.commit()
            migrators = [asyncio.create_task(_alembic(scratch_database, "upgrade", "head")) for _ in range(2)]
            waiting = 0
            for _ in range(200):
                waiting = await holder.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                )
                await holder.commit()
                if waiting == 2:
                    break
                await asyncio.sleep(0.1)
            await holder.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            await holder.commit()
            results = await asyncio.gather(*migrators)
        assert waiting == 2, "both migrators queued on the advisory lock"
        assert [code for code, _ in results] == [0, 0], results
        async with engine.connect() as connection:
            versions = (
                (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            )
        assert versions == [schema_head()]
    finally:
        await engine.dispose()


async def test_every_revision_downgrades_and_upgrades_again(scratch_database: Scratch) -> None:
    for action, target in (("upgrade", "head"), ("downgrade", "base"), ("upgrade", "head")):
        await migrate_here(scratch_database, action, target)  # raises if a revision fails


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_the_models_match_the_migrations(engine: object, settings: Settings) -> None:
    """Autogenerate against the migrated test database finds nothing to do."""
    check = create_async_engine(settings.DATABASE_URL)
    try:
        async with check.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await check.dispose()


def test_there_is_one_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


async def test_an_upgrade_at_head_gives_the_application_role_its_rights_again(
    scratch_database: Scratch, settings: Settings
) -> None:
    """A database that reached head without migration 0010's grants (an old volume that ran the empty
    slot, a renamed role) is put right by the next `alembic upgrade head`, with audit_events still
    append-only."""
    if settings.database_url.username == make_url(scratch_database.admin_url).username:
        pytest.skip("one role migrates and runs the app: there are no rights to grant")
    await migrate_here(scratch_database, "upgrade", "head")
    role = settings.database_url.username
    admin = create_async_engine(scratch_database.admin_url)
    app = create_async_engine(scratch_database.app_url)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"'))
        code, output = await _alembic(scratch_database, "upgrade", "head")
        assert code == 0, output
        async with app.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM users")) == 0
            privileges = await connection.scalar(
                text(
                    "SELECT array_agg(p ORDER BY p) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', "
                    "'DELETE', 'TRUNCATE']) p WHERE has_table_privilege('audit_events', p)"
                )
            )
        assert privileges == ["INSERT", "SELECT"]
    finally:
        await app.dispose()
        await admin.dispose()
