"""Counts and times every HTTP request by method, route template and status: three updates per request,
written in batches (`batch.UPDATES`), called by the request edge (`app.core.edge`) once the answer is sent.

The route label is the matched route's path format, read from the scope after routing, so that
`/auth/sessions/3f2a…` counts as `/auth/sessions/{session_id}`. A request that no route matched, or
that a guard refused before routing, counts as `unmatched`. Methods outside HTTP's standard set count
as `other`: neither label can grow with what clients send.
"""

import os

from prometheus_client.metrics import Counter, Histogram
from starlette.types import Scope

from app.metrics.batch import UPDATES
from app.metrics.instruments import HTTP_REQUEST_DURATION, HTTP_REQUESTS, UNMATCHED_ROUTE, WORKER_REQUESTS

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


class RequestMetrics:
    def __init__(self) -> None:
        # The labelled children, resolved once per (method, route, status): `labels()` takes a lock and
        # validates its arguments on every call. Bounded by the routes, methods and statuses there are.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # This worker's child of WORKER_REQUESTS, resolved on the first request: by then the process is
        # the worker itself, whatever forked or spawned it.
        self._worker_requests: Counter | None = None

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Count a request that was answered `status` (500 where it raised before answering) after
        `seconds`; its route is the one routing left in the scope."""
        route = getattr(scope.get("route"), "path_format", None) or UNMATCHED_ROUTE
        counter, histogram = self._series_for(scope["method"], route, status)
        UPDATES.count(counter)
        UPDATES.observe(histogram, seconds)
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
