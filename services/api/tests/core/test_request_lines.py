"""The request log line written straight from its fields (`app.core.logging.log_request`, how the API
server writes one line per request) is the line the logging machinery writes for the same record, byte for
byte, in both formats; any other logging configuration takes the machinery's way."""

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import httpx
import pytest

from app.core import logging as pyauth_logging
from app.core.logging import REQUEST_LOGGER, BatchingStreamHandler, RequestLine, log_request, logging_config
from tests.conftest import make_settings

Format = Literal["text", "json"]
NOW_NS = 1_796_263_441_123_456_789
# A time whose float seconds round up to the next second: LogRecord then reads its msecs as 0, not 999.
ROUNDS_UP_NS = 1_796_263_441_999_999_950


@contextmanager
def served_logging(log_format: Format, level: str = "INFO") -> Iterator[io.StringIO]:
    """`pyauth`'s handler as `python -m app` configures it (batched, pyauth's formatter, the startup
    filter), writing to a string; the loggers as they were afterwards."""
    config = logging_config(make_settings(LOG_FORMAT=log_format, LOG_LEVEL=level), batched=True)
    spec = dict(config["formatters"]["default"])
    factory = spec.pop("()")
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(factory(**spec))
    handler.addFilter(pyauth_logging.DropStartupTraceback())
    pyauth, request = logging.getLogger("pyauth"), logging.getLogger(REQUEST_LOGGER)
    saved = (pyauth.handlers[:], pyauth.propagate, pyauth.level, request.handlers[:], request.level)
    pyauth.handlers[:], pyauth.propagate, request.handlers[:] = [handler], False, []
    pyauth.setLevel(level)
    request.setLevel(logging.NOTSET)
    try:
        yield stream
    finally:
        handler.flush()
        pyauth.handlers[:], pyauth.propagate = saved[0], saved[1]
        pyauth.setLevel(saved[2])
        request.handlers[:] = saved[3]
        request.setLevel(saved[4])


class Passes(logging.Filter):
    """A logger filter that lets everything through: its presence alone sends the line the general way."""

    def filter(self, record: logging.LogRecord) -> bool:
        return True


LINES = [
    RequestLine("GET", "/.well-known/jwks.json", 200, 0.4321, "0123456789abcdef" * 2, logging.INFO),
    RequestLine("POST", "/auth/token", 400, 12.349, "proxy-id-12345678", logging.INFO),
    RequestLine("GET", "/health/live", 200, 0.05, "f" * 32, logging.DEBUG),
    # A percent-decoded path may hold anything: line breaks, escapes, separators, quotes, non-ASCII.
    RequestLine("GET", '/nope\n2026 INFO x\r\x1b[2J\u2028"é', 404, 1.0, "a" * 32, logging.INFO),
    RequestLine("Traceback", "/DatabaseUnreachable", 405, 0.25, "b" * 32, logging.INFO),
    RequestLine("PUT", "/a\\b/\t/\x7f/\U0001f600", 500, 123456.789, "c" * 32, logging.INFO),
    RequestLine("GET", "/slow", 200, 1e-7, "d" * 32, logging.INFO),
]


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("created_ns", [NOW_NS, ROUNDS_UP_NS])
def test_the_direct_request_line_is_the_one_logging_writes(
    log_format: Format, created_ns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: created_ns)  # the LogRecord's clock
    request = logging.getLogger(REQUEST_LOGGER)
    records: list[logging.LogRecord] = []
    make_record = request.makeRecord

    def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(record := make_record(*args, **kwargs))
        return record

    monkeypatch.setattr(request, "makeRecord", counted)
    with served_logging(log_format, level="DEBUG") as direct:
        for line in LINES:
            log_request(RequestLine(*_fields(line), created_ns=created_ns))
    assert records == []  # written straight from the fields
    with served_logging(log_format, level="DEBUG") as general:
        request.addFilter(keep := Passes())
        try:
            for line in LINES:
                log_request(RequestLine(*_fields(line), created_ns=created_ns))
        finally:
            request.removeFilter(keep)
    assert len(records) == len(LINES)  # through the logging machinery
    assert direct.getvalue() == general.getvalue()
    assert len(direct.getvalue().splitlines()) == len(LINES)  # one line each, the Traceback one kept
    assert "\x1b" not in direct.getvalue() and "\u2028" not in direct.getvalue()


def _fields(line: RequestLine) -> tuple[str, str, int, float, str, int]:
    return line.method, line.path, line.status, line.duration_ms, line.request_id, line.levelno


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_below_the_level_no_line_is_written_either_way(log_format: Format) -> None:
    with served_logging(log_format, level="INFO") as output:
        log_request(RequestLine("GET", "/health/live", 200, 0.1, "c" * 32, logging.DEBUG))
    assert output.getvalue() == ""


def test_a_capturing_handler_on_the_request_logger_gets_its_record(caplog: pytest.LogCaptureFixture) -> None:
    """pytest's capture sits on the root: with the request log propagating there, the record is made."""
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    log_request(RequestLine("GET", "/users/me", 200, 3.0, "d" * 32, logging.INFO))
    (record,) = [r for r in caplog.records if r.name == REQUEST_LOGGER]
    assert record.getMessage() == "GET /users/me 200 3.0ms"
    assert record.__dict__["request_id"] == "d" * 32


async def test_public_documents_log_at_debug_and_other_answers_at_info(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Every relying party polls the JWKS and discovery: their 200 and 304 answers log at DEBUG, as health
    probes do, so they do not drown the request log; any other answer still logs at INFO."""
    caplog.set_level(logging.DEBUG, logger="pyauth.request")
    etag = (await client.get("/.well-known/jwks.json")).headers["etag"]
    await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    await client.get("/.well-known/openid-configuration")
    await client.post("/.well-known/jwks.json")
    lines = [(r.levelno, r.getMessage().split()[:3]) for r in caplog.records if r.name == "pyauth.request"]
    assert lines == [
        (logging.DEBUG, ["GET", "/.well-known/jwks.json", "200"]),
        (logging.DEBUG, ["GET", "/.well-known/jwks.json", "304"]),
        (logging.DEBUG, ["GET", "/.well-known/openid-configuration", "200"]),
        (logging.INFO, ["POST", "/.well-known/jwks.json", "405"]),
    ]
