"""Per-request plumbing: a request id on every response and every log line, and one log line per request.

A pure ASGI middleware, so it adds no task or buffering to the request path. The line holds method,
path (never the query string, which may carry tokens), status, duration and the request id. The path is
the percent-decoded one, so it may hold any character (`%0a`, `%1b`): the log formatters
(`app.core.logging`) escape control characters in it, as in every other logged value.

The request id is set in `app.core.logging.request_id` for the whole request, so every record any logger
writes while serving it carries the id (the formatters add it), the access line included.
"""

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import REQUEST_LOGGER, RequestLine, log_request
from app.core.logging import request_id as current_request_id

log = logging.getLogger(REQUEST_LOGGER)

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            # Health probes and metric scrapes, every few seconds, would drown the log; failures still show.
            quiet = scope["path"].startswith(("/health/", "/metrics")) and status == 200
            level = logging.DEBUG if quiet else logging.INFO
            if log.isEnabledFor(level):
                line = RequestLine(scope["method"], scope["path"], status, duration_ms, request_id, level)
                log_request(line)
            current_request_id.reset(token)

    @staticmethod
    def _request_id(scope: Scope) -> str:
        """Keep a well-formed id from an upstream proxy, so one request can be followed across services;
        anything else is replaced, so a client cannot write arbitrary text into the log."""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _CLIENT_ID.fullmatch(candidate):
                    return candidate
        return os.urandom(16).hex()  # 128 random bits; uuid.uuid4().hex took 1.6 µs, this 0.17
