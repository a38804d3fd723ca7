"""The edge every HTTP request passes on its way in and its answer on the way out: one pure ASGI middleware
(no task, no buffering beyond the small bodies the guard reads) that, in this order,

- gives the request its id (`app.core.requests`), in the scope's state and in the logging contextvar for
  everything that serves it, and sends it back as `X-Request-ID`;
- guards the body (`app.core.security.RequestGuard`): a refusal is answered here, counted and logged;
- completes the answer's security headers (`app.core.security.SecurityHeaders`);
- counts and times the request (`observe`: `app.metrics.requests.RequestMetrics` where metrics are on);
- writes the request's log line.

One layer instead of four: each had its own call, its own wrapper of `send` and its own copy of the
headers, for every request.
"""

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.logging import request_id as current_request_id
from app.core.requests import log_request_line, request_id_of
from app.core.security import DOCS_PATHS, UNGUARDED_METHODS, RequestGuard, SecurityHeaders

# Told of every answered request: its scope (routed), its status (500 where the app raised before
# answering) and its duration in seconds.
Observer = Callable[[Scope, int, float], None]


class RequestEdge:
    def __init__(self, app: ASGIApp, *, settings: Settings, observe: Observer | None = None) -> None:
        self.app = app
        self.guard = RequestGuard(settings)
        self.headers = SecurityHeaders(settings)
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        context_token = current_request_id.set(request_id)
        is_docs = scope["path"].startswith(DOCS_PATHS)
        started = time.perf_counter()
        status = 500  # an exception before the answer started: the server answers 500

        async def send_from_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = self.headers.completed(message.get("headers", ()), is_docs=is_docs)
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            admitted: Receive | None = receive
            if scope["method"] not in UNGUARDED_METHODS:
                admitted = await self.guard.admit(scope, receive, send_from_edge)
            if admitted is not None:
                await self.app(scope, admitted, send_from_edge)
        finally:
            seconds = time.perf_counter() - started
            try:
                if self.observe is not None:
                    self.observe(scope, status, seconds)
                log_request_line(scope, status, seconds, request_id)
            finally:
                current_request_id.reset(context_token)
