"""Request counts and latency histograms: labelled by route template, never by the raw path."""

import asyncio
import uuid
from dataclasses import dataclass

import httpx
import pytest

from app.metrics import exposition
from app.metrics.batch import MetricBatch
from app.metrics.requests import RequestMetrics
from tests.auth.helpers import signed_up
from tests.metrics.helpers import requests_total, sample, scrape


async def test_requests_are_counted_and_timed_by_method_route_and_status(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/health/live")).status_code == 200
    after = await scrape(client)

    assert (
        requests_total(after, "GET", "/health/live", 200) - requests_total(before, "GET", "/health/live", 200)
        == 3
    )
    labels = {"method": "GET", "route": "/health/live", "status": "200"}
    count_before = sample(before, "pyauth_http_request_duration_seconds_count", **labels) or 0.0
    count_after = sample(after, "pyauth_http_request_duration_seconds_count", **labels)
    assert count_after == count_before + 3
    everything = sample(after, "pyauth_http_request_duration_seconds_bucket", **labels, le="+Inf")
    assert everything == count_after
    assert (sample(after, "pyauth_http_request_duration_seconds_sum", **labels) or 0.0) > 0


async def test_path_parameters_are_labelled_by_the_route_template(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    session_id = (await client.get("/auth/sessions", headers=tokens.bearer)).json()[0]["id"]
    template = "/auth/sessions/{session_id}"
    before = requests_total(await scrape(client), "DELETE", template, 204)

    assert (await client.delete(f"/auth/sessions/{session_id}", headers=tokens.bearer)).status_code == 204
    after = await scrape(client)

    assert requests_total(after, "DELETE", template, 204) == before + 1
    assert session_id not in after


async def test_unmatched_paths_and_unknown_methods_share_fixed_labels(client: httpx.AsyncClient) -> None:
    probe = f"/no-such-page-{uuid.uuid4().hex}"
    before = await scrape(client)

    assert (await client.get(probe)).status_code == 404
    assert (await client.request("BREW", "/health/live")).status_code == 405
    after = await scrape(client)

    assert (
        requests_total(after, "GET", "unmatched", 404) == requests_total(before, "GET", "unmatched", 404) + 1
    )
    assert requests_total(after, "other", "/health/live", 405) == (
        requests_total(before, "other", "/health/live", 405) + 1
    )
    assert probe not in after
    assert "BREW" not in after


async def test_refusals_before_routing_are_counted_as_unmatched(client: httpx.AsyncClient) -> None:
    before = requests_total(await scrape(client), "POST", "unmatched", 415)
    refused = await client.post("/auth/register", content=b"hello", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    assert requests_total(await scrape(client), "POST", "unmatched", 415) == before + 1


@dataclass
class _Route:
    path_format: str


async def test_requests_of_a_kind_wait_together_and_one_flush_writes_them() -> None:
    """Each request only adds its duration to its kind's list; the flush writes the count, the histogram
    and the worker's count for all of them, and a kind seen again after a flush starts a new list."""
    route = _Route(f"/test-{uuid.uuid4().hex}")
    batch = MetricBatch(interval=3600)
    metrics = RequestMetrics(batch)
    scope = {"method": "GET", "route": route}
    for seconds in (0.001, 0.002, 0.3):
        metrics.observe(scope, 200, seconds)
    metrics.observe(scope, 404, 0.004)
    labels = {"method": "GET", "route": route.path_format}
    assert requests_total(exposition.render().decode(), "GET", route.path_format, 200) == 0

    batch.flush()
    written = exposition.render().decode()
    assert requests_total(written, "GET", route.path_format, 200) == 3
    assert requests_total(written, "GET", route.path_format, 404) == 1
    ok = {**labels, "status": "200"}
    assert sample(written, "pyauth_http_request_duration_seconds_count", **ok) == 3
    assert sample(written, "pyauth_http_request_duration_seconds_sum", **ok) == pytest.approx(0.303)
    assert sample(written, "pyauth_http_request_duration_seconds_bucket", **ok, le="0.005") == 2

    metrics.observe(scope, 200, 0.5)
    await asyncio.to_thread(metrics.observe, scope, 200, 0.5)  # no loop in that thread: written at once
    assert requests_total(exposition.render().decode(), "GET", route.path_format, 200) == 4
    batch.flush()
    assert requests_total(exposition.render().decode(), "GET", route.path_format, 200) == 5
