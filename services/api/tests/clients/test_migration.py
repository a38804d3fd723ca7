"""Migration 0013 on a database that already has sessions: they become the built-in client's, whose
row it seeds, so their refresh tokens keep working after the upgrade. The revisions run in this process
(tests/core/test_migrations.py::migrate_here)."""

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.core.test_migrations import Scratch, migrate_here, scratch_database

__all__ = ["scratch_database"]  # the fixture, imported to be used here


async def test_sessions_from_before_0013_belong_to_the_built_in_client(scratch_database: Scratch) -> None:
    await migrate_here(scratch_database, "upgrade", "0012")  # raises if a revision fails
    admin = create_async_engine(scratch_database.admin_url)
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with admin.begin() as connection:
            await connection.execute(
                text("INSERT INTO users (id, email, password_hash) VALUES (:id, 'old@example.org', 'x')"),
                {"id": user_id},
            )
            await connection.execute(
                text(
                    "INSERT INTO auth_sessions (id, user_id, created_at, last_used_at, expires_at) "
                    "VALUES (:id, :user_id, now(), now(), now() + interval '1 day')"
                ),
                {"id": session_id, "user_id": user_id},
            )
        await migrate_here(scratch_database, "upgrade", "head")
        async with admin.connect() as connection:
            owner = await connection.scalar(
                text("SELECT client_id FROM auth_sessions WHERE id = :id"), {"id": session_id}
            )
            builtin = (
                await connection.execute(
                    text(
                        "SELECT client_type, grant_types, first_party, is_disabled FROM oauth_clients "
                        "WHERE client_id = 'pyauth'"
                    )
                )
            ).one()
    finally:
        await admin.dispose()
    assert owner == "pyauth"
    assert tuple(builtin) == ("public", ["password", "refresh_token"], True, False)
