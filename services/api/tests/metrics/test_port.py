"""`/metrics` on a port of its own (METRICS_PORT, 9000), the convention of Keycloak's management port:
compose does not publish it, the public port does not serve it, and it serves nothing else.

The last test runs the real server (`python -m app`'s `serve()`) with two worker processes and scrapes its
second port over real HTTP, with one worker stopped at a time, so that it is known which worker answered.
"""

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.main import create_app
from tests.conftest import make_settings
from tests.metrics.helpers import METRICS_PORT, METRICS_URL, requests_total, sample
from tests.servers import LOOPBACK_TLS, ApiProcess


async def test_the_public_port_does_not_serve_the_metrics(client: httpx.AsyncClient) -> None:
    public = await client.get("/metrics")
    unknown = await client.get("/no-such-page")
    assert public.status_code == 404
    # The router's own 404: nothing says that /metrics exists elsewhere.
    assert public.json() == unknown.json() == {"error": "not_found", "detail": "Not Found"}
    assert (await client.get(METRICS_URL)).status_code == 200


async def test_the_metrics_port_serves_nothing_but_the_metrics(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/auth/token", "/.well-known/jwks.json", "/docs", "/metrics/"):
        response = await client.get(f"http://testserver:{METRICS_PORT}{path}")
        assert response.status_code == 404, path
    refused = await client.post(
        f"http://testserver:{METRICS_PORT}/auth/token", data={"grant_type": "password"}
    )
    assert refused.status_code == 404


async def test_metrics_on_public_port_serves_them_on_the_public_port_again(engine: AsyncEngine) -> None:
    app = create_app(make_settings(METRICS_ON_PUBLIC_PORT=True))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "pyauth_login_attempts_total" in response.text


PRODUCTION = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql+asyncpg://pyauth:a-real-database-password@db:5432/pyauth",
    "KEY_ENCRYPTION_KEY": "x7Qp2Lr9Vt4Kz8Nc1Hw6Bs3Jm5Fd0Gy2Ua9Ee4Ri7To1",
    "PUBLIC_BASE_URL": "https://auth.example.com",
}


def _metrics_refusal(**overrides: object) -> str | None:
    """Why these settings are refused for the metrics' sake, or None. Refusals for other reasons (other
    production checks) are not this test's business."""
    try:
        make_settings(**{**PRODUCTION, **overrides})
    except ValidationError as exc:
        return str(exc) if "METRICS" in str(exc) else None
    return None


def test_production_refuses_open_metrics_on_the_public_port() -> None:
    refusal = _metrics_refusal(METRICS_ON_PUBLIC_PORT=True)
    assert refusal is not None
    assert "METRICS_ON_PUBLIC_PORT=true without METRICS_TOKEN" in refusal
    assert _metrics_refusal(METRICS_ON_PUBLIC_PORT=True, METRICS_TOKEN="") is not None
    # Behind a token, or on the metrics port (compose does not publish it), or off: accepted.
    assert _metrics_refusal(METRICS_ON_PUBLIC_PORT=True, METRICS_TOKEN="scraper-token-0123456789") is None
    assert _metrics_refusal() is None
    assert _metrics_refusal(METRICS_ON_PUBLIC_PORT=True, METRICS_ENABLED=False) is None
    # Outside production the setting is the operator's call.
    assert make_settings(METRICS_ON_PUBLIC_PORT=True).metrics_on_public_port


def test_the_metrics_port_cannot_be_the_public_port() -> None:
    with pytest.raises(ValidationError, match="METRICS_PORT must not be the public port 8000"):
        make_settings(METRICS_PORT=8000)
    assert make_settings(METRICS_PORT=9100).metrics_port == 9100
    assert make_settings(METRICS_ENABLED=False).metrics_port is None
    assert make_settings(METRICS_ON_PUBLIC_PORT=True).metrics_port is None
    assert Settings.model_fields["METRICS_PORT"].default == 9000


# The real server, two workers, over real HTTP


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The worker is stopped (SIGSTOP): it accepts nothing, so its sibling answers every connection on a
    socket they share. Kept short: the parent replaces a worker that misses its health ping."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _get(url: str) -> httpx.Response:
    # A new connection per request: each one goes to whichever worker accepts it.
    return httpx.get(url, timeout=10, headers={"Connection": "close"}, verify=LOOPBACK_TLS)


def _wait_until_counted(metrics: str, requests: int) -> None:
    deadline = time.monotonic() + 10
    while requests_total(_get(metrics).text, "GET", "/health/live", 200) < requests:
        assert time.monotonic() < deadline
        time.sleep(0.05)


async def test_every_worker_answers_scrapes_on_the_metrics_port_with_every_workers_counts(
    settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server = ApiProcess(settings, metrics_dir, workers=2)
    try:
        server.wait_until_started(workers=2)
        first, second = server.worker_pids()
        public = f"http://127.0.0.1:{server.public_port}"
        metrics = f"http://127.0.0.1:{server.metrics_port}/metrics"

        # Each worker accepts the public port on a socket of its own, and the kernel chooses one per
        # connection; at most one of the two answered all three requests.
        for _ in range(3):
            assert _get(f"{public}/health/live").status_code == 200
        _wait_until_counted(metrics, 3)  # each worker writes its counts at most 0.1 s late
        with paused(second):  # the metrics socket is shared: the first worker answers this scrape
            by_first = _get(metrics)
        with paused(first):  # and the second this one
            by_second = _get(metrics)
        on_public_port = _get(f"{public}/metrics")
        api_on_metrics_port = _get(f"http://127.0.0.1:{server.metrics_port}/health/live")
    finally:
        server.stop()

    assert by_first.status_code == by_second.status_code == 200, server.log
    assert by_first.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert requests_total(by_first.text, "GET", "/health/live", 200) == 3
    assert requests_total(by_second.text, "GET", "/health/live", 200) == 3
    # The gauges are the sum over the live workers: the scraped one's read as it answered.
    assert sample(by_second.text, "pyauth_db_pool_checked_out_connections") == 0
    assert sample(by_second.text, "pyauth_password_hash_queue_depth") == 0
    assert on_public_port.status_code == 404
    assert api_on_metrics_port.status_code == 404
    assert server.process.returncode == 0, server.log
