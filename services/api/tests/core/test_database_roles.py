"""The application's database role has only the rights it uses (issue 9, item 9).

The app connects as DATABASE_URL's role; the migrator (here TEST_ADMIN_DATABASE_URL's role) owns the
schema. The application role is no superuser, owns nothing and creates nothing, and audit_events is
append-only for it (OWASP ASVS 16.4.2: logs protected from modification), so a compromised API cannot
rewrite its own audit trail.
"""

import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.auth.helpers import live_email, signed_up

INSUFFICIENT_PRIVILEGE = "42501"


async def _refused(engine: AsyncEngine, statement: str) -> str:
    """Run `statement` as the application role in a transaction that is rolled back; the SQLSTATE it
    fails with ("" if it succeeds)."""
    async with engine.connect() as connection:
        try:
            await connection.execute(text(statement))
        except DBAPIError as error:
            return str(getattr(error.orig, "sqlstate", "") or "")
        finally:
            await connection.rollback()
    return ""


async def test_the_application_role_is_no_superuser_and_owns_nothing(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        role = (
            await connection.execute(
                text(
                    "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication "
                    "FROM pg_roles WHERE rolname = current_user"
                )
            )
        ).one()
        owned = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_class "
                "WHERE relowner = current_user::regrole AND relnamespace = 'public'::regnamespace"
            )
        )
        database_owner = await connection.scalar(
            text(
                "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database "
                "WHERE datname = current_database()"
            )
        )
    assert tuple(role) == (False, False, False, False, False)
    assert owned == 0
    assert database_owner is False


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET reason = 'rewritten'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "SELECT id FROM audit_events FOR UPDATE",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL",
        "DROP TABLE audit_events",
    ],
)
async def test_the_application_role_cannot_change_or_remove_audit_events(
    engine: AsyncEngine, statement: str
) -> None:
    assert await _refused(engine, statement) == INSUFFICIENT_PRIVILEGE


async def test_the_application_role_reads_and_appends_audit_events(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        try:
            await connection.execute(
                text("INSERT INTO audit_events (occurred_at, event) VALUES (now(), 'probe.appended')")
            )
            count = await connection.scalar(
                text("SELECT count(*) FROM audit_events WHERE event = 'probe.appended'")
            )
        finally:
            await connection.rollback()
    assert count == 1


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE probe_created (id int)",
        "CREATE SCHEMA probe_schema",
        "CREATE FUNCTION probe_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE users ADD COLUMN probe int",
        "CREATE INDEX probe_index ON users (email)",
        "DROP TABLE users",
        "TRUNCATE users",
        "UPDATE alembic_version SET version_num = 'probe'",
        "CREATE ROLE probe_role",
    ],
)
async def test_the_application_role_cannot_change_the_schema(engine: AsyncEngine, statement: str) -> None:
    assert await _refused(engine, statement) == INSUFFICIENT_PRIVILEGE


async def test_a_table_a_later_migration_creates_gets_the_application_rights(
    engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    """Migration 0010's default privileges: a table the migrator creates later is readable and writable
    by the application without a GRANT of its own."""
    table = f"probe_later_{uuid.uuid4().hex[:8]}"
    async with admin_engine.begin() as connection:
        await connection.execute(text(f"CREATE TABLE {table} (id int)"))
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"INSERT INTO {table} VALUES (1)"))  # noqa: S608 - generated name
            await connection.execute(text(f"UPDATE {table} SET id = 2"))  # noqa: S608
            await connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    finally:
        async with admin_engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE {table}"))


async def test_the_application_role_may_turn_off_synchronous_commit(engine: AsyncEngine) -> None:
    """The rate limiter's `SET LOCAL synchronous_commit = off` needs no superuser."""
    async with engine.connect() as connection:
        try:
            await connection.execute(text("SET LOCAL synchronous_commit = off"))
            assert await connection.scalar(text("SHOW synchronous_commit")) == "off"
        finally:
            await connection.rollback()


async def test_the_app_runs_end_to_end_as_the_application_role(
    live_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Register, log in, refresh and read the account, committing for real through the app's own pool, and
    the audit rows are written: every right the app uses is granted."""
    email, tokens = await signed_up(live_client, live_email("roles"))
    me = await live_client.get("/users/me", headers=tokens.bearer)
    assert me.status_code == 200, me.text
    refreshed = await live_client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens.refresh}
    )
    assert refreshed.status_code == 200, refreshed.text
    async with engine.connect() as connection:
        superuser = await connection.scalar(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        )
        events = (
            (
                await connection.execute(
                    text(
                        "SELECT event FROM audit_events "
                        "WHERE user_id = (SELECT id FROM users WHERE email = :e)"
                    ),
                    {"e": email},
                )
            )
            .scalars()
            .all()
        )
    assert superuser is False
    assert "user.registered" in events
