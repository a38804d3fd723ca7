"""Requests per worker process: `make bench` reads them to show an unevenly fed worker."""

import asyncio
import os

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from app.metrics import exposition
from app.metrics.batch import FLUSH_INTERVAL_SECONDS, UPDATES
from tests.metrics.helpers import sample, scrape


async def test_each_request_is_counted_for_the_worker_process_that_answered_it(
    client: httpx.AsyncClient,
) -> None:
    worker = str(os.getpid())  # ASGITransport: the app answers in this very process
    before = sample(await scrape(client), "pyauth_worker_requests_total", worker=worker) or 0.0
    for _ in range(3):
        assert (await client.get("/health/live")).status_code == 200
    after = sample(await scrape(client), "pyauth_worker_requests_total", worker=worker)

    # The three probes, and the scrape before them (counted once its answer was sent).
    assert after == before + 4


def _written(worker: str) -> float | None:
    """This worker's count as the shared files hold it, as another worker's scrape would read it."""
    return sample(exposition.render().decode(), "pyauth_worker_requests_total", worker=worker)


async def test_a_request_reaches_the_shared_metrics_within_the_flush_interval(
    client: httpx.AsyncClient,
) -> None:
    """Another worker's scrape reads this worker's counts from the shared files: a request is written there
    at most FLUSH_INTERVAL_SECONDS after its answer, with no scrape of this process to flush it."""
    worker = str(os.getpid())
    UPDATES.flush()
    before = _written(worker) or 0.0
    assert (await client.get("/health/live")).status_code == 200
    assert _written(worker) in (before, None)
    await asyncio.sleep(FLUSH_INTERVAL_SECONDS * 3)
    assert _written(worker) == before + 1


async def test_the_end_of_the_lifespan_writes_the_requests_still_waiting(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that stops writes what it noted since its last flush: no request goes uncounted."""
    monkeypatch.setattr(UPDATES, "interval", 3600.0)  # only the lifespan's end can write it
    worker = str(os.getpid())
    UPDATES.flush()
    before = _written(worker) or 0.0
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/health/live")).status_code == 200
        assert _written(worker) in (before, None)
    assert _written(worker) == before + 1
