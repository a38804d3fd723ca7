"""`get_db()`: one session per request, committed once before the response, rolled back on error,
and closed in every case. These tests commit for real (in the test database) and clean up after."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Integer, String, bindparam, event, func, inspect, literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.clients.models import OAuthClient
from app.core.config import Settings
from app.core.database import DriverStatement
from app.core.dependencies import SessionDep
from app.core.errors import PyauthError
from app.core.models import read_only
from app.main import create_app
from app.passwords.hashing import PasswordHasher
from app.users.models import User
from tests.conftest import make_settings


class Refused(PyauthError):
    status_code = 409
    code = "refused"


@pytest.fixture
async def probe_app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    app = create_app(settings)

    @app.post("/probe/{email}")
    async def insert(email: str, session: SessionDep) -> dict[str, str]:
        await session.execute(
            text("INSERT INTO users (email, password_hash) VALUES (:email, 'x')"), {"email": email}
        )
        return {"status": "inserted"}

    @app.post("/probe-add/{email}")
    async def add_unflushed(email: str, session: SessionDep) -> dict[str, str]:
        session.add(User(email=email, password_hash="x"))  # no statement yet: the commit flushes it
        return {"status": "added"}

    @app.post("/probe-rename/{email}")
    async def rename_after_commit(email: str, session: SessionDep) -> dict[str, str]:
        user = User(email=email, password_hash="x")
        session.add(user)
        await session.commit()
        await session.refresh(user)
        await session.commit()  # no transaction left, only the change below for the last commit to flush
        user.display_name = "Renamed"
        return {"status": "renamed"}

    @app.post("/probe-kept/{email}")
    async def keep_after_commit(email: str, session: SessionDep) -> dict[str, str]:
        user = User(email=email, password_hash="x")
        session.add(user)
        await session.commit()  # the transaction ends: the request closes a session with no connection
        app.state.kept = (session, user)
        return {"status": "kept"}

    @app.post("/probe-unused")
    async def leave_unused(session: SessionDep) -> dict[str, str]:
        return {"status": "untouched"}

    @app.post("/probe-fails/{email}")
    async def insert_then_fail(email: str, session: SessionDep) -> dict[str, str]:
        await session.execute(
            text("INSERT INTO users (email, password_hash) VALUES (:email, 'x')"), {"email": email}
        )
        raise Refused("no")

    @app.post("/probe-commit-fails")
    async def violate_at_commit(session: SessionDep) -> dict[str, str]:
        # The constraint is deferred: both inserts succeed and only COMMIT fails.
        await session.execute(text("INSERT INTO probe_deferred (v) VALUES (1), (1)"))
        return {"status": "inserted"}

    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def email() -> str:
    return f"get-db-{uuid.uuid4().hex}@example.com"


@pytest.fixture(autouse=True)
async def _probe_tables(engine: AsyncEngine, admin_engine: AsyncEngine) -> AsyncIterator[None]:
    # DDL is the migrator's: the application role may not create tables.
    app_role = engine.dialect.identifier_preparer.quote(engine.url.username or "")
    async with admin_engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE IF NOT EXISTS probe_deferred (v int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        )
        await connection.execute(text(f"GRANT SELECT, INSERT ON probe_deferred TO {app_role}"))
    yield
    async with admin_engine.begin() as connection:
        await connection.execute(text("DELETE FROM users WHERE email LIKE 'get-db-%'"))
        await connection.execute(text("DROP TABLE probe_deferred"))


async def _count(engine: AsyncEngine, email: str) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}))


async def _post(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as client:
        return await client.post(path)


async def test_a_request_commits_once_and_returns_its_connection(
    probe_app: FastAPI, engine: AsyncEngine, email: str
) -> None:
    app_engine: AsyncEngine = probe_app.state.engine
    commits: list[object] = []

    def count_commit(connection: object) -> None:
        commits.append(connection)

    event.listen(app_engine.sync_engine, "commit", count_commit)
    try:
        response = await _post(probe_app, f"/probe/{email}")
    finally:
        event.remove(app_engine.sync_engine, "commit", count_commit)
    assert response.status_code == 200
    assert len(commits) == 1
    assert await _count(engine, email) == 1, "the row is committed by the time the response is read"
    assert app_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_what_a_request_left_unflushed_is_committed(probe_app: FastAPI, engine: AsyncEngine) -> None:
    """The request's commit is skipped only when there is nothing to commit: an object added and never
    flushed, or a change made after the session's last transaction ended, is still written."""
    added, renamed = f"get-db-{uuid.uuid4().hex}@example.com", f"get-db-{uuid.uuid4().hex}@example.com"
    assert (await _post(probe_app, f"/probe-add/{added}")).status_code == 200
    assert (await _post(probe_app, f"/probe-rename/{renamed}")).status_code == 200
    assert await _count(engine, added) == 1
    async with engine.connect() as connection:
        named = text("SELECT display_name FROM users WHERE email = :e")
        name = await connection.scalar(named, {"e": renamed})
    assert name == "Renamed"


async def test_a_session_without_a_transaction_is_closed_all_the_same(
    probe_app: FastAPI, engine: AsyncEngine, email: str
) -> None:
    """A session whose transaction already ended holds no connection; it is closed in place, without the
    greenlet hop, and still lets go of every object it held."""
    assert (await _post(probe_app, f"/probe-kept/{email}")).status_code == 200
    session, user = probe_app.state.kept
    assert not session.in_transaction()
    assert len(session.identity_map) == 0
    assert inspect(user).detached
    assert await _count(engine, email) == 1
    assert probe_app.state.engine.pool.checkedout() == 0


async def test_a_session_is_made_on_its_first_use_only(
    probe_app: FastAPI, engine: AsyncEngine, email: str
) -> None:
    """A request that never touches its session (a refresh rotated with its rate limit's hit) makes none;
    one that does gets one, committed and closed as before."""
    make = probe_app.state.sessionmaker
    made: list[AsyncSession] = []

    def counting_sessionmaker() -> AsyncSession:
        made.append(make())
        return made[-1]

    probe_app.state.sessionmaker = counting_sessionmaker
    try:
        assert (await _post(probe_app, "/probe-unused")).status_code == 200
        assert made == []
        assert (await _post(probe_app, f"/probe/{email}")).status_code == 200
    finally:
        probe_app.state.sessionmaker = make
    assert len(made) == 1
    assert not made[0].in_transaction()
    assert await _count(engine, email) == 1
    assert probe_app.state.engine.pool.checkedout() == 0


async def test_an_error_rolls_back_and_closes_the_session(
    probe_app: FastAPI, engine: AsyncEngine, email: str
) -> None:
    response = await _post(probe_app, f"/probe-fails/{email}")
    assert response.status_code == 409
    assert response.json() == {"error": "refused", "detail": "no"}
    assert await _count(engine, email) == 0
    assert probe_app.state.engine.pool.checkedout() == 0


async def test_a_failed_commit_is_an_error_response_not_a_success(probe_app: FastAPI) -> None:
    response = await _post(probe_app, "/probe-commit-fails")
    assert response.status_code == 500, "the commit ran before the response was sent, and its failure shows"
    assert response.json() == {"error": "internal_error", "detail": "An internal error occurred."}
    assert "Traceback" not in response.text
    assert probe_app.state.engine.pool.checkedout() == 0


async def test_an_exhausted_pool_is_a_503_and_the_log_names_the_pool_not_the_database(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Every connection of the worker's pool in use for DB_POOL_TIMEOUT: the request is answered 503, and
    the log line says the pool stayed exhausted, with its counts, rather than that the database is down."""
    app = create_app(make_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=0.2))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            app.state.engine.connect() as held,  # the pool's one connection, taken
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            await held.execute(text("SELECT 1"))
            with caplog.at_level("WARNING", logger="pyauth.errors"):
                form = {"grant_type": "password", "username": "pool@example.org", "password": "p" * 20}
                response = await client.post("/auth/token", data=form)
    assert response.status_code == 503
    assert response.json()["error"] == "service_unavailable"
    [line] = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert "no pooled connection came free within DB_POOL_TIMEOUT" in line
    assert "Checked out connections: 1" in line


async def test_a_read_only_model_reads_its_values_and_is_never_written(db_session: AsyncSession) -> None:
    """`read_only` builds what a driver statement returned into a model outside any session: its values
    read back, an attribute it was not given reads None, and a session it is not in writes nothing of it."""
    now = datetime.now(UTC)
    values = {"client_id": f"read-only-{uuid.uuid4().hex[:8]}", "name": "Read only", "client_type": "public"}
    client = read_only(OAuthClient, {**values, "grant_types": ["refresh_token"], "created_at": now})
    assert (client.client_id, client.grant_types, client.created_at) == (
        values["client_id"],
        ["refresh_token"],
        now,
    )
    assert client.access_token_audience is None
    assert inspect(client).transient
    client.name = "changed"
    await db_session.flush()
    assert await db_session.get(OAuthClient, values["client_id"]) is None


async def test_a_driver_statement_sends_its_literals_and_named_values_in_their_places(
    connection: AsyncConnection,
) -> None:
    """`DriverStatement`: a SQLAlchemy statement compiled once for asyncpg; its named parameters and its
    literals go where the compiled text numbers them, and a named one left out is an error, not a NULL."""
    email, factor = bindparam("email", type_=String()), bindparam("factor", type_=Integer())
    statement = DriverStatement.of(
        select(func.upper(email).label("shout"), (literal(6, Integer()) * factor).label("product"))
    )
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    row = await driver.fetchrow(statement.sql, *statement.parameters(factor=7, email="a@example.org"))
    assert (row["shout"], row["product"]) == ("A@EXAMPLE.ORG", 42)
    with pytest.raises(KeyError):
        statement.parameters(email="a@example.org")


async def test_a_login_commits_each_statement_on_its_own_up_to_the_hash(
    probe_app: FastAPI, engine: AsyncEngine, email: str, settings: Settings
) -> None:
    """Up to the password hash, a login's statements (its count, or its known device's read and count; its
    account and factors) go to the driver and each commits on its own, outside any transaction: no BEGIN
    and COMMIT round trips, and no session of the ORM. After the hash, one statement starts the session, on
    its own too. Both are committed when the answer comes."""
    hasher = PasswordHasher(settings)
    password = "violet-harbor-lantern-42"
    password_hash = await hasher.hash(password)
    hasher.shutdown()
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO users (email, password_hash, is_verified) VALUES (:e, :h, true)"),
            {"e": email, "h": password_hash},
        )
    seen: list[tuple[str, bool]] = []

    def watch(dbapi_connection: Any, _record: object) -> None:
        driver: asyncpg.Connection = dbapi_connection.driver_connection
        driver.add_query_logger(
            lambda query: seen.append((" ".join(query.query.split()), driver.is_in_transaction()))
        )

    through_the_orm: list[str] = []

    def executed(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        through_the_orm.append(statement)

    app_engine: AsyncEngine = probe_app.state.engine
    await app_engine.dispose()  # every connection the login uses is a new one, watched
    event.listen(app_engine.sync_engine, "connect", watch)
    event.listen(app_engine.sync_engine, "before_cursor_execute", executed)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=probe_app), base_url="http://t"
        ) as client:
            form = {"grant_type": "password", "username": email, "password": password}
            response = await client.post("/auth/token", data=form)
            await asyncio.sleep(0.1)  # asyncpg tells its loggers soon after a statement, not in it
            first = seen.copy()
            seen.clear()
            # A known device (a browser's cookie): its own counter, read and counted on the driver too.
            client.cookies.clear()
            known = {**form, "device_token": response.json()["device_token"]}
            second = await client.post("/auth/token", data=known)
            await asyncio.sleep(0.1)
    finally:
        event.remove(app_engine.sync_engine, "connect", watch)
        event.remove(app_engine.sync_engine, "before_cursor_execute", executed)
    assert response.status_code == 200 and second.status_code == 200, (response.text, second.text)
    assert through_the_orm == [], through_the_orm
    before_hash = [entry for entry in first if "login_throttles" in entry[0] or "FROM users" in entry[0]]
    assert before_hash[0][0].startswith("WITH counted AS (UPDATE login_throttles"), first
    assert "FROM users" in before_hash[1][0] and "mfa_totp" in before_hash[1][0], first
    device = [statement for statement, _ in seen if "login_devices" in statement]
    assert device[0].startswith("SELECT login_devices."), seen
    assert device[1].startswith("UPDATE login_devices"), seen
    for statement, in_transaction in first + seen:
        assert not in_transaction and not statement.startswith(("BEGIN", "COMMIT")), (statement, first, seen)
    async with engine.connect() as connection:
        sessions = "SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = :e"
        assert await connection.scalar(text(sessions), {"e": email}) == 2
