"""Per-request plumbing: the request id and the one log line of a request, as `app.core.edge` uses them.

The line holds method, path (never the query string, which may carry tokens), status, duration and the
request id. The path is the percent-decoded one, so it may hold any character (`%0a`, `%1b`): the log
formatters (`app.core.logging`) escape control characters in it, as in every other logged value.

The request id is set in `app.core.logging.request_id` for the whole request, so every record any logger
writes while serving it carries the id (the formatters add it), the access line included.
"""

import logging
import os
import re

from starlette.types import Scope

from app.core.logging import REQUEST_LOGGER, RequestLine, log_request

log = logging.getLogger(REQUEST_LOGGER)

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# Health probes and metric scrapes, every few seconds, would drown the log, and so would the public documents
# every relying party polls (the JWKS, discovery: thousands a second at a busy issuer, and no user's
# data in them). Their answers log at DEBUG; their failures still show, and `/metrics` counts every one.
QUIET_PATHS = ("/health/", "/metrics", "/.well-known/")
QUIET_STATUSES = (200, 304)  # 304: a relying party's `If-None-Match` still matched


def request_id_of(scope: Scope) -> str:
    """Keep a well-formed id from an upstream proxy, so one request can be followed across services;
    anything else is replaced, so a client cannot write arbitrary text into the log."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _CLIENT_ID.fullmatch(candidate):
                return candidate
    return os.urandom(16).hex()  # 128 random bits; uuid.uuid4().hex took 1.6 µs, this 0.17


def first_header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header `name` (lower case, as ASGI gives names), as
    `request.headers.get(name)` gives it, without building the request's `Headers`."""
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def log_request_line(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    """The request's line: INFO, or DEBUG for a health probe, metrics scrape or public document
    (`/.well-known/`) answered 200 or 304."""
    quiet = status in QUIET_STATUSES and scope["path"].startswith(QUIET_PATHS)
    level = logging.DEBUG if quiet else logging.INFO
    if log.isEnabledFor(level):
        log_request(RequestLine(scope["method"], scope["path"], status, seconds * 1000, request_id, level))
