"""Fixtures for the resource-server library (libs/pyauth-resource), tested against the real pyauth.

`pyauth` is the real app (`create_app`, its lifespan, its key ring in the test database) served by uvicorn
on a free loopback port, its issuer being that address: the library reads discovery and the JWKS from it
over real HTTP, as a resource server would. Users are registered and signed in through its API. The
library's HTTP client counts every request it sends, and the server counts every request it answers, so
tests can say how many fetches a verification cost from both ends.

The app and its server start once per session (per xdist worker: `served_pyauth`) and are lent to one test
at a time, as `tests/conftest.py` lends the shared app: the test's clock, and a key ring of its own loaded
from a signing-key table set aside for the test (holding a copy of the keys generated, as at an app's start,
for the session's first test: generating an RSA key costs 0.1-0.3 CPU-s), with the app's state as it was
once the test ends, and the server's count started again. Starting and stopping an app and its server for
each test cost about half a second.
"""

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pyauth_resource import AccessTokenVerifier
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.keyring import KeyRing
from app.keys.models import SigningKey
from app.keys.storage import rotate_signing_key
from app.main import create_app
from tests.auth.helpers import Tokens, live_email, password_grant, register, tokens_of
from tests.conftest import SwappedClock, delete_live_accounts, lent_to_the_test, make_settings, rows_set_aside
from tests.servers import LOOPBACK_TLS, loopback_socket, serving, url_of


class CountingServer:
    """An ASGI app behind a count of the HTTP requests it was sent, by path: the server's side of "how many
    fetches", whatever the client says."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests[scope["path"]] += 1
        await self.app(scope, receive, send)


@dataclass
class Pyauth:
    """The running pyauth: its URL (the issuer), settings, key ring and clock, and the requests it was
    sent, by path (`served`)."""

    issuer: str
    settings: Settings
    keyring: KeyRing
    clock: ManualClock
    engine: AsyncEngine
    served: Counter[str] = field(default_factory=Counter)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.issuer, timeout=10, verify=LOOPBACK_TLS)

    async def signed_in_user(self) -> tuple[str, Tokens]:
        """A user registered and signed in through the API (password grant): their id and tokens."""
        _, tokens = await self.signed_in_email_and_tokens()
        async with self.http() as client:
            me = await client.get("/users/me", headers=tokens.bearer)
            assert me.status_code == 200, me.text
        return str(me.json()["id"]), tokens

    async def signed_in_email_and_tokens(self) -> tuple[str, Tokens]:
        """A user registered and signed in through the API (password grant): their email and tokens."""
        email = live_email("resource")
        async with self.http() as client:
            created = await register(client, email)
            assert created.status_code == 201, created.text
            tokens = tokens_of(await password_grant(client, email))
        return email, tokens

    async def rotate_keys(self) -> None:
        """Rotate as `make rotate-keys ARGS=--now` does (committed: new keys that sign at once), and let
        the app's key ring see it."""
        async with async_sessionmaker(self.engine)() as session, session.begin():
            await rotate_signing_key(session, self.settings, self.clock, lead=timedelta(0))
        await self.keyring.refresh()


@pytest.fixture(scope="session")
async def served_pyauth(engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    """pyauth built for its own loopback address (the issuer), started and served for the session."""
    sock = loopback_socket()
    application = create_app(make_settings(PUBLIC_BASE_URL=url_of(sock)), clock=SwappedClock())
    counted = CountingServer(application)
    application.state.served_requests = counted.requests
    async with application.router.lifespan_context(application), serving(counted, sock):
        yield application


@pytest.fixture(scope="session")
def first_signing_keys() -> list[dict[str, Any]]:
    """The signing-key rows the key ring generated for the first test of the session (per worker): each
    later test starts from a copy of them rather than generating its own (an RSA key is ~0.1 CPU-s)."""
    return []


@pytest.fixture
async def pyauth(
    served_pyauth: FastAPI,
    engine: AsyncEngine,
    admin_engine: AsyncEngine,
    clock: ManualClock,
    first_signing_keys: list[dict[str, Any]],
) -> AsyncIterator[Pyauth]:
    table = SigningKey.__table__
    assert isinstance(table, Table)
    settings: Settings = served_pyauth.state.settings
    # The rotation tests commit keys; the key ring generates (and commits) a first one into the empty table
    # for the session's first test, and finds those same keys, put back, in every later test's.
    async with rows_set_aside(engine, table):
        try:
            if first_signing_keys:
                async with engine.begin() as connection:
                    await connection.execute(insert(table), first_signing_keys)
            with lent_to_the_test(served_pyauth, clock) as application:
                keyring = await KeyRing.load(application.state.sessionmaker, settings, clock)
                if not first_signing_keys:
                    async with engine.connect() as connection:
                        rows = (await connection.execute(select(table))).mappings().all()
                    first_signing_keys.extend(dict(row) for row in rows)
                application.state.keyring = keyring
                served: Counter[str] = application.state.served_requests
                served.clear()
                yield Pyauth(settings.issuer, settings, keyring, clock, engine, served=served)
        finally:
            await delete_live_accounts(admin_engine)


@dataclass
class RequestLog:
    """Every request the library's HTTP client sent: (method, path)."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    async def record(self, request: httpx.Request) -> None:
        self.sent.append((request.method, request.url.path))

    def count(self, path: str) -> int:
        return sum(1 for _, sent_path in self.sent if sent_path == path)

    @contextmanager
    def new_requests(self) -> Iterator[list[tuple[str, str]]]:
        """The requests sent inside the block."""
        before = len(self.sent)
        during: list[tuple[str, str]] = []
        yield during
        during.extend(self.sent[before:])


JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
VerifierFactory = Callable[..., AccessTokenVerifier]


@pytest.fixture
def requests() -> RequestLog:
    return RequestLog()


@pytest.fixture
async def make_verifier(
    pyauth: Pyauth, requests: RequestLog, clock: ManualClock
) -> AsyncIterator[VerifierFactory]:
    """Verifiers for the running pyauth, on the test's clock, their HTTP requests logged."""
    clients: list[httpx.AsyncClient] = []

    def make(**options: Any) -> AccessTokenVerifier:
        http = httpx.AsyncClient(timeout=5, event_hooks={"request": [requests.record]}, verify=LOOPBACK_TLS)
        clients.append(http)
        options = {"audience": pyauth.settings.JWT_AUDIENCE, **options}
        return AccessTokenVerifier(
            options.pop("issuer", pyauth.issuer),
            http_client=http,
            clock=lambda: clock.now().timestamp(),
            **options,
        )

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture
def verifier(make_verifier: VerifierFactory) -> AccessTokenVerifier:
    return make_verifier()


def later(clock: ManualClock, seconds: float) -> None:
    clock.advance(timedelta(seconds=seconds))
