"""The library's RFC 7662 introspection mode, against pyauth's own `/oauth2/introspect` (found through
discovery) and against a small real introspection endpoint served over HTTP in the test, fed real pyauth
tokens. What it proves: a revoked token is refused within the cache's few seconds, the client
authenticates as RFC 6749 §2.3.1 says, and a forged token never reaches the endpoint."""

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import unquote_plus

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI, Form, Header
from fastapi.responses import JSONResponse
from pyauth_resource import (
    AccessTokenClaims,
    AccessTokenVerifier,
    Fetches,
    Introspection,
    InvalidToken,
    VerifierUnavailable,
)
from pyauth_resource.fastapi import BearerAuth
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.clients import service as clients
from app.clients.models import ClientType, OAuthClient
from app.clients.schemas import ClientCreate
from app.clients.service import ClientChange
from app.core.clock import ManualClock
from app.core.context import RequestContext
from tests.resource.conftest import Pyauth, VerifierFactory, later
from tests.resource.helpers import claims, issued, signed_with_stranger_key
from tests.servers import loopback_socket, serving

AUDIENCE = "pyauth"  # the verifiers' audience (make_verifier): JWT_AUDIENCE
CLIENT_ID = "notes-api"
CLIENT_SECRET = "s3cret:with/odd+chars&"  # form-encoded before Basic encoding (RFC 6749 §2.3.1)


@dataclass
class IntrospectionEndpoint:
    """An RFC 7662 endpoint: tokens are active until revoked; callers authenticate with Basic."""

    url: str = ""
    revoked: set[str] = field(default_factory=set)
    received: list[dict[str, str]] = field(default_factory=list)

    def app(self, pyauth: Pyauth) -> FastAPI:
        app = FastAPI()

        @app.post("/introspect")
        async def introspect(
            token: Annotated[str, Form()],
            token_type_hint: Annotated[str | None, Form()] = None,
            authorization: Annotated[str | None, Header()] = None,
        ) -> JSONResponse:
            self.received.append({"token": token, "token_type_hint": token_type_hint or ""})
            if not _client_authenticated(authorization):
                return JSONResponse(
                    {"error": "invalid_client"}, status_code=401, headers={"WWW-Authenticate": "Basic"}
                )
            if token in self.revoked:
                return JSONResponse({"active": False})
            payload = _unverified_payload(token)
            return JSONResponse(
                {
                    "active": True,
                    "token_type": "Bearer",
                    "sub": payload.get("sub"),
                    "iss": pyauth.issuer,
                    "exp": payload.get("exp"),
                }
            )

        return app


def _client_authenticated(authorization: str | None) -> bool:
    if authorization is None or not authorization.startswith("Basic "):
        return False
    user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
    return (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)


def _unverified_payload(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


@pytest.fixture
async def endpoint(pyauth: Pyauth) -> AsyncIterator[IntrospectionEndpoint]:
    endpoint = IntrospectionEndpoint()
    sock = loopback_socket()
    async with serving(endpoint.app(pyauth), sock) as url:
        endpoint.url = f"{url}/introspect"
        yield endpoint


@pytest.fixture
def introspecting(make_verifier: VerifierFactory, endpoint: IntrospectionEndpoint) -> AccessTokenVerifier:
    options = Introspection(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, endpoint=endpoint.url, cache_ttl=5
    )
    return make_verifier(introspection=options)


async def test_rfc7662_a_revoked_token_is_refused_within_the_cache_ttl(
    pyauth: Pyauth, introspecting: AccessTokenVerifier, endpoint: IntrospectionEndpoint, clock: ManualClock
) -> None:
    app = FastAPI()
    auth = BearerAuth(introspecting)

    @app.post("/transfer")
    async def transfer(_: Annotated[AccessTokenClaims, Depends(auth.require(introspect=True))]) -> str:
        return "done"

    @app.get("/balance")
    async def balance(_: Annotated[AccessTokenClaims, Depends(auth.require())]) -> str:
        return "42"

    _, tokens = await pyauth.signed_in_user()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bank.test") as client:
        assert (await client.post("/transfer", headers=tokens.bearer)).status_code == 200
        assert endpoint.received == [{"token": tokens.access, "token_type_hint": "access_token"}]

        endpoint.revoked.add(tokens.access)
        later(clock, 4)  # still cached: no second request
        assert (await client.post("/transfer", headers=tokens.bearer)).status_code == 200
        assert len(endpoint.received) == 1
        later(clock, 1)  # cache_ttl passed: the revocation is seen
        refused = await client.post("/transfer", headers=tokens.bearer)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert len(endpoint.received) == 2
        # Routes without introspection keep verifying locally (the token is valid until it expires).
        assert (await client.get("/balance", headers=tokens.bearer)).status_code == 200
        assert len(endpoint.received) == 2


async def test_rfc7662_concurrent_checks_of_one_token_share_one_request(
    pyauth: Pyauth, introspecting: AccessTokenVerifier, endpoint: IntrospectionEndpoint
) -> None:
    token = issued(pyauth)
    results = await asyncio.gather(*(introspecting.verify(token, introspect=True) for _ in range(10)))
    assert len({result.sub for result in results}) == 1
    assert len(endpoint.received) == 1


async def test_the_librarys_fetch_counter_counts_each_introspection_request_the_endpoint_received(
    pyauth: Pyauth, introspecting: AccessTokenVerifier, endpoint: IntrospectionEndpoint, clock: ManualClock
) -> None:
    token = issued(pyauth)
    await introspecting.verify(token, introspect=True)
    await introspecting.verify(token, introspect=True)  # cached: no request
    later(clock, 5)  # cache_ttl passed
    await introspecting.verify(token, introspect=True)

    assert len(endpoint.received) == 2
    assert introspecting.fetches == Fetches(discovery=1, jwks=1, introspection=2)
    assert pyauth.served.total() == 2  # discovery and the JWKS; introspection went to the test's endpoint


async def test_rfc7662_a_forged_token_never_reaches_the_introspection_endpoint(
    pyauth: Pyauth, introspecting: AccessTokenVerifier, endpoint: IntrospectionEndpoint
) -> None:
    with pytest.raises(InvalidToken):
        await introspecting.verify(
            signed_with_stranger_key(claims(pyauth), kid=secrets.token_hex(8)), introspect=True
        )
    assert endpoint.received == []


async def test_rfc7662_wrong_client_credentials_are_503_not_401(
    pyauth: Pyauth, make_verifier: VerifierFactory, endpoint: IntrospectionEndpoint
) -> None:
    options = Introspection(client_id=CLIENT_ID, client_secret="wrong", endpoint=endpoint.url)
    verifier = make_verifier(introspection=options)
    token = issued(pyauth)
    results = await asyncio.gather(
        *(verifier.verify(token, introspect=True) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, VerifierUnavailable) for result in results), results
    assert len(endpoint.received) == 1  # the concurrent checks shared the one failed request


def test_introspection_options_never_show_the_secret() -> None:
    assert CLIENT_SECRET not in repr(Introspection(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))


@pytest.fixture
async def resource_server(pyauth: Pyauth) -> AsyncIterator[tuple[str, str]]:
    """A confidential client registered (committed) in the running pyauth, whose audience is the one the
    verifiers expect: pyauth lets it introspect the tokens meant for that audience. Its id and secret."""
    change = ClientChange(RequestContext.background(pyauth.clock.now()), source="test")
    body = ClientCreate(
        name="Notes API", type=ClientType.CONFIDENTIAL, grant_types=[], access_token_audience=AUDIENCE
    )
    async with async_sessionmaker(pyauth.engine)() as session, session.begin():
        created, secret = await clients.create_client(session, body, change)
        client_id = created.client.client_id
    assert secret is not None
    try:
        yield client_id, secret
    finally:
        async with async_sessionmaker(pyauth.engine)() as session, session.begin():
            await session.execute(delete(OAuthClient).where(OAuthClient.client_id == client_id))


async def test_rfc7662_pyauths_introspection_endpoint_sees_a_revocation(
    pyauth: Pyauth, make_verifier: VerifierFactory, resource_server: tuple[str, str], clock: ManualClock
) -> None:
    client_id, secret = resource_server
    # No endpoint given: the library reads pyauth's `introspection_endpoint` from discovery.
    verifier = make_verifier(
        introspection=Introspection(client_id=client_id, client_secret=secret, cache_ttl=5)
    )
    _, tokens = await pyauth.signed_in_user()
    claims = await verifier.verify(tokens.access, introspect=True)
    assert claims.client_id == "pyauth"
    async with pyauth.http() as http:
        assert (await http.post("/auth/revoke", data={"token": tokens.refresh})).status_code == 200
    later(clock, 5)
    with pytest.raises(InvalidToken):
        await verifier.verify(tokens.access, introspect=True)
    # Local verification alone cannot see the revocation: the token is valid until it expires.
    assert (await verifier.verify(tokens.access)).sub == claims.sub
