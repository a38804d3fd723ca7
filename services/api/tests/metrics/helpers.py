"""Reading `/metrics` as Prometheus would: scrape it and pick one sample out of the text."""

import functools

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings

METRICS_PORT: int = Settings.model_fields["METRICS_PORT"].default
METRICS_URL = f"http://testserver:{METRICS_PORT}/metrics"
"""A scrape through httpx's ASGI transport, which puts the URL's port in `scope["server"]`, as uvicorn
puts the port of the socket a connection arrived on: here, METRICS_PORT."""


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get(METRICS_URL)
    assert response.status_code == 200, response.text
    return response.text


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly these labels, or None if the scrape has none."""
    return _samples(exposition, name).get(frozenset(labels.items()))


@functools.lru_cache(maxsize=64)
def _samples(exposition: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample `name` of a scrape by its labels, the first where one repeats. The process-wide
    registry holds thousands of samples late in a session, and the parser takes ~0.1 ms a sample: it
    reads only the comment lines (names and types) and this name's sample lines, once per scrape."""
    lines = [line for line in exposition.splitlines() if line.startswith(("#", f"{name}{{", f"{name} "))]
    values: dict[frozenset[tuple[str, str]], float] = {}
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for found in family.samples:
            if found.name == name:
                values.setdefault(frozenset(found.labels.items()), found.value)
    return values


def requests_total(exposition: str, method: str, route: str, status: int) -> float:
    value = sample(exposition, "pyauth_http_requests_total", method=method, route=route, status=str(status))
    return value or 0.0


def outcome(exposition: str, name: str, value: str) -> float:
    found = sample(exposition, name, outcome=value)
    assert found is not None, f"{name}{{outcome={value!r}}} is missing"
    return found
