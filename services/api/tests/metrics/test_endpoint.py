"""`GET /metrics`: Prometheus text, restricted by METRICS_TOKEN, gone with METRICS_ENABLED=false, absent
from the OpenAPI schema, and quiet in the request log."""

import logging

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.main import create_app
from app.metrics import exposition
from tests.conftest import make_settings
from tests.metrics.helpers import METRICS_URL, requests_total

METRICS_TOKEN = "metrics-scraper-token-0123456789"


@pytest.fixture
def token_required(app: FastAPI) -> FastAPI:
    app.state.settings = app.state.settings.model_copy(update={"METRICS_TOKEN": SecretStr(METRICS_TOKEN)})
    return app


async def test_metrics_are_prometheus_text_with_every_family(client: httpx.AsyncClient) -> None:
    response = await client.get(METRICS_URL)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "pyauth_http_requests",
        "pyauth_http_request_duration_seconds",
        "pyauth_login_attempts",
        "pyauth_refresh_attempts",
        "pyauth_password_hash_queue_depth",
        "pyauth_db_pool_checked_out_connections",
    } <= families


async def test_a_token_is_required_when_one_is_set(
    token_required: FastAPI, client: httpx.AsyncClient
) -> None:
    missing = await client.get(METRICS_URL)
    assert missing.status_code == 401
    assert missing.json()["error"] == "invalid_token"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "pyauth_" not in missing.text
    for wrong in (f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}", "Bearer ", METRICS_TOKEN):
        assert (await client.get(METRICS_URL, headers={"Authorization": wrong})).status_code == 401, wrong

    allowed = await client.get(METRICS_URL, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200
    assert "pyauth_login_attempts_total" in allowed.text


async def test_an_empty_token_setting_leaves_the_metrics_open(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # What compose passes for an unset variable (`METRICS_TOKEN: ${METRICS_TOKEN:-}`).
    app.state.settings = app.state.settings.model_copy(update={"METRICS_TOKEN": SecretStr("")})
    assert (await client.get(METRICS_URL)).status_code == 200


async def test_disabled_metrics_have_no_route_and_count_nothing() -> None:
    app = create_app(make_settings(METRICS_ENABLED=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get(METRICS_URL)).status_code == 404
        # The registry is per process: read it directly, as an enabled app's scrape would.
        before = requests_total(exposition.render().decode(), "GET", "/health/live", 200)
        assert (await client.get("/health/live")).status_code == 200
        after = requests_total(exposition.render().decode(), "GET", "/health/live", 200)
    assert after == before


async def test_metrics_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_scrapes_log_at_debug_and_refusals_at_info(
    token_required: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pyauth.request")
    await client.get(METRICS_URL, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    await client.get(METRICS_URL)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "pyauth.request"]
    assert [(level, message.split()[2]) for level, message in lines] == [
        (logging.DEBUG, "200"),
        (logging.INFO, "401"),
    ]
    assert all(message.startswith("GET /metrics ") for _, message in lines)
