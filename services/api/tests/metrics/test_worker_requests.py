"""Requests per worker process: `make bench` reads them to show an unevenly fed worker."""

import os

import httpx

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
