"""Log lines cannot be forged (ASVS 16.4.1): both formats escape control characters in every logged
value, from every logger, and mark a traceback's lines so that none reads as a record of its own."""

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import httpx
import pytest

from app.core.logging import CONTINUATION, escape_controls, logging_config
from tests.conftest import make_settings

FORGED = "2026-12-01T00:00:00 INFO    pyauth.auth: login succeeded user=admin"
Format = Literal["text", "json"]


@contextmanager
def log_output(log_format: Format, logger_name: str) -> Iterator[io.StringIO]:
    """What `logger_name` writes at INFO and above, through the formatter the app configures."""
    spec = dict(logging_config(make_settings(LOG_FORMAT=log_format))["formatters"]["default"])
    factory = spec.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**spec))
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _messages(output: str, log_format: Format) -> list[str]:
    lines = output.splitlines()
    return [json.loads(line)["message"] for line in lines] if log_format == "json" else lines


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_percent_encoded_line_break_in_the_path_cannot_forge_a_request_log_line(
    client: httpx.AsyncClient, log_format: Format
) -> None:
    path = "/nope%0a" + FORGED.replace(" ", "%20") + "%0d%1b[2J%e2%80%a8"
    with log_output(log_format, "pyauth.request") as output:
        response = await client.get(path)
    assert response.status_code == 404
    (message,) = _messages(output.getvalue(), log_format)  # one record, one line
    assert "GET /nope\\x0a2026-12-01T00:00:00 INFO    pyauth.auth: login succeeded" in message
    assert "\\x0d\\x1b[2J\\u2028 404 " in message
    assert "\x1b" not in output.getvalue()
    if log_format == "json":
        assert json.loads(output.getvalue())["path"].startswith("/nope\\x0a2026")


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("logger_name", ["pyauth.auth", "uvicorn.error", "sqlalchemy.engine", "alembic"])
def test_every_logger_escapes_control_characters_in_every_value(log_format: Format, logger_name: str) -> None:
    with log_output(log_format, logger_name) as output:
        logging.getLogger(logger_name).warning(
            "login failed for %s", f"a@example.org\n{FORGED}\x1b]0;title\x07", extra={"email": "b@x\r\nc"}
        )
    (message,) = _messages(output.getvalue(), log_format)
    assert message.endswith("login failed for a@example.org\\x0a" + FORGED + "\\x1b]0;title\\x07")
    if log_format == "json":
        assert json.loads(output.getvalue())["email"] == "b@x\\x0d\\x0ac"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_traceback_cannot_start_a_record_of_its_own(log_format: Format) -> None:
    with log_output(log_format, "pyauth.errors") as output:
        try:
            raise ValueError(f"bad input\n{FORGED}\x1b[2J")
        except ValueError:
            logging.getLogger("pyauth.errors").exception("unhandled ValueError on POST /auth/token")
    if log_format == "json":
        (line,) = output.getvalue().splitlines()
        exception = json.loads(line)["exception"]
        assert exception.endswith(f"ValueError: bad input\n{FORGED}\\x1b[2J")
        return
    first, *rest = output.getvalue().splitlines()
    assert first.endswith("unhandled ValueError on POST /auth/token")
    assert rest[0] == CONTINUATION + "Traceback (most recent call last):"
    assert all(line.startswith(CONTINUATION) for line in rest)
    assert rest[-1] == CONTINUATION + FORGED + "\\x1b[2J"


def test_printable_text_is_logged_as_it_is() -> None:
    for text in ["plain", "Zoë Ødegård 日本語 😀", "C:\\path\\x0a", ""]:
        assert escape_controls(text) == text
    assert escape_controls("\t\x7f\x85\u202e\U000e0001") == "\\x09\\x7f\\x85\\u202e\\U000e0001"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_every_log_line_of_a_request_carries_its_request_id(
    client: httpx.AsyncClient, log_format: Format
) -> None:
    """A login failure's own line (from the auth service, not the request log) names the request it was
    written for: the id the client got as X-Request-ID, the same as on the access line."""
    with log_output(log_format, "pyauth") as output:
        response = await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "nobody@example.org", "password": "not-the-password"},
        )
    assert response.status_code == 400
    request_id = response.headers["x-request-id"]
    lines = output.getvalue().splitlines()
    failure = [line for line in lines if "login failed" in line]
    access = [line for line in lines if "POST /auth/token 400" in line]
    assert failure and access
    for line in failure + access:
        if log_format == "json":
            assert json.loads(line)["request_id"] == request_id
        else:
            assert line.endswith(f" rid={request_id}")
    with log_output(log_format, "pyauth") as output:
        logging.getLogger("pyauth.auth").warning("outside any request")
    assert "rid=" not in output.getvalue() and "request_id" not in output.getvalue()


async def test_a_request_id_from_a_proxy_is_kept_on_every_line(client: httpx.AsyncClient) -> None:
    with log_output("json", "pyauth") as output:
        response = await client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "nobody@example.org", "password": "not-the-password"},
            headers={"X-Request-ID": "proxy-id-12345678"},
        )
    assert response.headers["x-request-id"] == "proxy-id-12345678"
    records = [json.loads(line) for line in output.getvalue().splitlines()]
    assert len(records) >= 2
    assert {record["request_id"] for record in records} == {"proxy-id-12345678"}


@pytest.mark.parametrize("given", [None, "short", "has spaces in it", "x" * 65, "new\nline-12345678"])
async def test_a_missing_or_malformed_request_id_is_replaced_by_a_fresh_random_one(
    client: httpx.AsyncClient, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    ids = [(await client.get("/health/live", headers=headers)).headers["x-request-id"] for _ in range(2)]
    for request_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id), request_id  # 128 random bits, in hex
    assert ids[0] != ids[1]
