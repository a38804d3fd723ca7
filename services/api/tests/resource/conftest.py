"""Fixtures for the resource-server library (libs/pyauth-resource), tested against the real pyauth.

`pyauth` is the real app (`create_app`, its lifespan, its key ring in the test database) served by uvicorn
on a free loopback port, its issuer being that address: the library reads discovery and the JWKS from it
over real HTTP, as a resource server would. Users are registered and signed in through its API. The
library's HTTP client counts every request it sends, and the server counts every request it answers, so
tests can say how many fetches a verification cost from both ends.
"""

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pyauth_resource import AccessTokenVerifier
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.keyring import KeyRing
from app.keys.models import SigningKey
from app.keys.storage import rotate_signing_key
from app.main import create_app
from tests.auth.helpers import Tokens, live_email, password_grant, register, tokens_of
from tests.conftest import delete_live_accounts, make_settings, rows_set_aside
from tests.servers import loopback_socket, serving, url_of


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
        return httpx.AsyncClient(base_url=self.issuer, timeout=10)

    async def signed_in_user(self) -> tuple[str, Tokens]:
        """A user registered and signed in through the API (password grant): their id and tokens."""
        email = live_email("resource")
        async with self.http() as client:
            created = await register(client, email)
            assert created.status_code == 201, created.text
            tokens = tokens_of(await password_grant(client, email))
            me = await client.get("/users/me", headers=tokens.bearer)
            assert me.status_code == 200, me.text
        return str(me.json()["id"]), tokens

    async def rotate_keys(self) -> None:
        """Rotate as `make rotate-keys ARGS=--now` does (committed: new keys that sign at once), and let
        the app's key ring see it."""
        async with async_sessionmaker(self.engine)() as session, session.begin():
            await rotate_signing_key(session, self.settings, self.clock, lead=timedelta(0))
        await self.keyring.refresh()


@pytest.fixture
async def pyauth(engine: AsyncEngine, clock: ManualClock) -> AsyncIterator[Pyauth]:
    table = SigningKey.__table__
    assert isinstance(table, Table)
    sock = loopback_socket()
    settings = make_settings(PUBLIC_BASE_URL=url_of(sock))
    # The app commits its first signing key (and the rotations tests make): set the table's rows aside.
    async with rows_set_aside(engine, table):
        application = create_app(settings, clock=clock)
        counted = CountingServer(application)
        try:
            async with application.router.lifespan_context(application), serving(counted, sock):
                keyring = application.state.keyring
                yield Pyauth(settings.issuer, settings, keyring, clock, engine, served=counted.requests)
        finally:
            await delete_live_accounts(engine)


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
        http = httpx.AsyncClient(timeout=5, event_hooks={"request": [requests.record]})
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
