"""Fixtures of the rate-limit tests: an app for floods of parallel requests from many addresses."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.clock import ManualClock
from app.main import create_app
from tests.conftest import delete_live_accounts, make_settings


@pytest.fixture
async def flood_app(admin_engine: AsyncEngine, clock: ManualClock) -> AsyncIterator[FastAPI]:
    """As `live_app`, committing for real, with two differences for a flood of 100 requests: the test client
    speaks through a trusted proxy, so that each request can come from its own address, and requests wait
    up to 60 s for a pooled connection, so that a busy shared test machine does not turn the queue for
    the 10 connections into 503s."""
    application = create_app(make_settings(DB_POOL_TIMEOUT=60, TRUSTED_PROXIES=["127.0.0.1/32"]), clock=clock)
    async with application.router.lifespan_context(application):
        yield application
    await delete_live_accounts(admin_engine)


@pytest.fixture
async def flood_client(flood_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=flood_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
