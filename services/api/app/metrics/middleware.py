"""Counts and times every HTTP request by method, route template and status: a pure ASGI middleware,
so it adds no task and no buffering, only a clock read and three updates per request, written in
batches (`batch.UPDATES`).

The route label is the matched route's path format, read from the scope after routing, so that
`/auth/sessions/3f2a…` counts as `/auth/sessions/{session_id}`. A request that no route matched, or
that a guard refused before routing, counts as `unmatched`. Methods outside HTTP's standard set count
as `other`: neither label can grow with what clients send.
"""

import os
import time

from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics.batch import UPDATES
from app.metrics.instruments import HTTP_REQUEST_DURATION, HTTP_REQUESTS, UNMATCHED_ROUTE, WORKER_REQUESTS

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled children, resolved once per (method, route, status): `labels()` takes a lock and
        # validates its arguments on every call. Bounded by the routes, methods and statuses there are.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # This worker's child of WORKER_REQUESTS, resolved on the first request: by then the process is
        # the worker itself, whatever forked or spawned it.
        self._worker_requests: Counter | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started: the server answers 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path_format", None) or UNMATCHED_ROUTE
            counter, histogram = self._series_for(scope["method"], route, status)
            UPDATES.count(counter)
            UPDATES.observe(histogram, time.perf_counter() - started)
            if self._worker_requests is None:
                self._worker_requests = WORKER_REQUESTS.labels(str(os.getpid()))
            UPDATES.count(self._worker_requests)

    def _series_for(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            labels = (method if method in STANDARD_METHODS else "other", route, str(status))
            series = HTTP_REQUESTS.labels(*labels), HTTP_REQUEST_DURATION.labels(*labels)
            if method in STANDARD_METHODS:  # keyed by the raw method: only bounded keys are kept
                self._series[key] = series
        return series
