"""The Have I Been Pwned range check (k-anonymity), against a real HTTP server on 127.0.0.1 that speaks
the Pwned Passwords range API: off by default, only the hash prefix sent, padding ignored, and every
failure of the service fails open with one warning line that names no part of the password or its hash."""

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.main import create_app
from app.passwords.policy import PasswordTooCommon, PasswordTooGuessable, check_new_password
from tests.auth.helpers import fresh_password, unique_email
from tests.conftest import make_settings, started_in_test_transaction


def sha1_hex(password: str) -> str:
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


@dataclass
class RangeApi:
    """What the fake service knows (full SHA-1 hex -> count) and how it misbehaves; what it was asked."""

    url: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    delay_seconds: float = 0.0
    status: int = 200
    body: bytes | None = None
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def answer(self, prefix: str, padded: bool) -> bytes:
        lines = [f"{digest[5:]}:{count}" for digest, count in self.counts.items() if digest[:5] == prefix]
        if padded:  # as the real service pads: random suffixes with a count of 0
            lines += [f"{secrets.token_hex(18).upper()[:35]}:0" for _ in range(50)]
        return "\r\n".join(lines).encode()


def _handler(api: RangeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if api.delay_seconds:
                time.sleep(api.delay_seconds)
            prefix = self.path.removeprefix("/range/")
            if api.status != 200 or not self.path.startswith("/range/"):
                self.send_error(api.status if api.status != 200 else 404)
                return
            body = (
                api.body
                if api.body is not None
                else api.answer(prefix, self.headers["Add-Padding"] == "true")
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def range_api() -> Iterator[RangeApi]:
    api = RangeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    server.block_on_close = False
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    # Polled every 50 ms, not the default 500: shutdown() waits for the poll, once per test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def hibp_settings(api: RangeApi, **overrides: object) -> Settings:
    values: dict[str, object] = {"HIBP_ENABLED": True, "HIBP_API_URL": api.url, "HIBP_TIMEOUT_SECONDS": 1.0}
    return make_settings(**(values | overrides))


async def test_a_password_the_range_api_knows_is_refused_as_too_common(range_api: RangeApi) -> None:
    password = fresh_password()
    range_api.counts[sha1_hex(password)] = 42
    with pytest.raises(PasswordTooCommon, match="Have I Been Pwned"):
        await check_new_password(password, settings=hibp_settings(range_api), email=None)


async def test_only_the_five_character_hash_prefix_is_sent_with_padding_asked_for(
    range_api: RangeApi,
) -> None:
    password = fresh_password()
    await check_new_password(password, settings=hibp_settings(range_api), email=None)
    [(path, headers)] = range_api.requests
    digest = sha1_hex(password)
    assert path == f"/range/{digest[:5]}"
    assert headers["add-padding"] == "true"
    assert digest[5:] not in path
    assert password not in path


async def test_padding_entries_with_a_count_of_0_do_not_refuse(range_api: RangeApi) -> None:
    password = fresh_password()
    range_api.counts[sha1_hex(password)] = 0
    assert await check_new_password(password, settings=hibp_settings(range_api), email=None) == password


async def test_the_minimum_count_comes_from_settings(range_api: RangeApi) -> None:
    password = fresh_password()
    range_api.counts[sha1_hex(password)] = 4
    settings = hibp_settings(range_api, HIBP_MIN_COUNT=5)
    assert await check_new_password(password, settings=settings, email=None) == password
    range_api.counts[sha1_hex(password)] = 5
    with pytest.raises(PasswordTooCommon):
        await check_new_password(password, settings=settings, email=None)


async def test_the_range_check_is_off_by_default(range_api: RangeApi) -> None:
    password = fresh_password()
    range_api.counts[sha1_hex(password)] = 1000
    settings = make_settings(HIBP_API_URL=range_api.url)
    assert settings.HIBP_ENABLED is False
    assert await check_new_password(password, settings=settings, email=None) == password
    assert range_api.requests == []


async def test_local_refusals_come_before_any_range_request(range_api: RangeApi) -> None:
    with pytest.raises(PasswordTooGuessable):
        await check_new_password("monkeymonkeymonkey", settings=hibp_settings(range_api), email=None)
    assert range_api.requests == []


def _assert_one_fail_open_warning(caplog: pytest.LogCaptureFixture, password: str) -> None:
    records = [r for r in caplog.records if r.name == "pyauth.passwords"]
    assert [r.levelno for r in records] == [logging.WARNING]
    line = records[0].getMessage()
    assert "fail open" in line
    digest = sha1_hex(password)
    for secret in (password, digest[:5], digest[5:], digest[5:].lower()):
        assert secret not in caplog.text


async def test_a_range_api_slower_than_the_timeout_fails_open_and_says_so_in_the_log(
    range_api: RangeApi, caplog: pytest.LogCaptureFixture
) -> None:
    password = fresh_password()
    range_api.counts[sha1_hex(password)] = 42  # known, but the answer comes too late to count
    range_api.delay_seconds = 2.0
    settings = hibp_settings(range_api, HIBP_TIMEOUT_SECONDS=0.3)
    caplog.set_level(logging.INFO, logger="pyauth.passwords")
    started = time.monotonic()
    assert await check_new_password(password, settings=settings, email=None) == password
    assert time.monotonic() - started < 1.5
    _assert_one_fail_open_warning(caplog, password)
    assert "TimeoutError" in caplog.text


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, None), (429, None), (200, b"<html>a captive portal</html>"), (200, b"A" * 400_000)],
)
async def test_a_failing_range_api_fails_open_with_one_warning(
    range_api: RangeApi, caplog: pytest.LogCaptureFixture, status: int, body: bytes | None
) -> None:
    password = fresh_password()
    range_api.status, range_api.body = status, body
    caplog.set_level(logging.INFO, logger="pyauth.passwords")
    assert await check_new_password(password, settings=hibp_settings(range_api), email=None) == password
    _assert_one_fail_open_warning(caplog, password)


async def test_an_unreachable_range_api_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()  # nothing listens there any more
    password = fresh_password()
    caplog.set_level(logging.INFO, logger="pyauth.passwords")
    settings = make_settings(HIBP_ENABLED=True, HIBP_API_URL=url)
    assert await check_new_password(password, settings=settings, email=None) == password
    _assert_one_fail_open_warning(caplog, password)


@pytest.fixture
async def hibp_app(range_api: RangeApi, engine: object, db_session: AsyncSession) -> AsyncIterator[FastAPI]:
    async with started_in_test_transaction(create_app(hibp_settings(range_api)), db_session) as application:
        yield application


async def test_registration_refuses_a_password_the_range_api_knows(
    hibp_app: FastAPI, range_api: RangeApi
) -> None:
    pwned, clean = fresh_password(), fresh_password()
    range_api.counts[sha1_hex(pwned)] = 7
    transport = httpx.ASGITransport(app=hibp_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        refused = await client.post("/auth/register", json={"email": unique_email(), "password": pwned})
        accepted = await client.post("/auth/register", json={"email": unique_email(), "password": clean})
    assert refused.status_code == 422
    assert refused.json()["error"] == "password_too_common"
    assert accepted.status_code == 201
