"""FastAPI's own OpenTelemetry stays off even where a tracer provider is configured: pyauth's telemetry is
its request log and metrics, which hold no query string, form value or exception message (app.main,
NO_FASTAPI_TELEMETRY)."""

from typing import Any

import httpx
from opentelemetry import trace


class RecordingTracerProvider(trace.TracerProvider):
    """A configured global provider (neither OpenTelemetry's deferred default nor its no-op one, which
    FastAPI skips), noting who asks it for a tracer: FastAPI's telemetry, if on, asks for one to trace a
    request. The tracer it hands out records nothing."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        self.asked.append(args or kwargs)
        return trace.NoOpTracer()


def _global_provider() -> RecordingTracerProvider:
    """The process's global provider, set once (OpenTelemetry allows one per process)."""
    current = trace.get_tracer_provider()
    if isinstance(current, RecordingTracerProvider):
        return current
    provider = RecordingTracerProvider()
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another test set the global tracer provider first"
    return provider


async def test_fastapi_traces_no_request_with_a_provider_configured(client: httpx.AsyncClient) -> None:
    provider = _global_provider()
    provider.asked.clear()
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.post("/auth/token", data={"grant_type": "password"})).status_code == 400
    assert (await client.get("/users/me")).status_code == 401
    assert provider.asked == []
