"""Liveness never touches the database; readiness needs the database and the schema at head."""

import httpx

from app.core.config import Settings
from app.core.database import build_engine
from app.main import create_app
from tests.conftest import make_settings


async def test_live_is_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_is_200_when_database_answers_and_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "schema": "ok"}}


async def test_ready_is_503_when_the_schema_is_behind(settings: Settings, engine: object) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        app.state.schema_head = "9999_not_yet_applied"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["schema"].startswith("behind")


async def test_ready_is_503_and_live_200_when_the_database_is_unreachable(settings: Settings) -> None:
    # A second app pointed at a closed port: its lifespan would refuse to start, so build its state
    # from a running app and then swap the engine for one that cannot connect.
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        closed = make_settings(
            DATABASE_URL=settings.DATABASE_URL.replace(f":{settings.database_url.port}/", ":1/"),
            DB_POOL_TIMEOUT=1,
        )
        real_engine = app.state.engine
        app.state.engine = build_engine(closed)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/health/ready")
                live = await client.get("/health/live")
        finally:
            await app.state.engine.dispose()
            app.state.engine = real_engine
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert live.status_code == 200
