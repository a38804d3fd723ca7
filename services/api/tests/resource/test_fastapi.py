"""The FastAPI dependency in a resource server of its own (a notes API), fed real pyauth tokens: RFC 6750
answers (401/400/403 and their `WWW-Authenticate: Bearer` challenges), scopes, roles, `amr` (RFC 9470
step-up) and the framework-neutral path a bare ASGI app takes."""

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pyauth_resource import (
    AccessTokenClaims,
    AccessTokenVerifier,
    BearerError,
    Requirement,
    authorization_values,
)
from pyauth_resource.fastapi import BearerAuth
from starlette.types import Receive, Scope, Send

from app.core.clock import ManualClock
from app.mfa import totp
from tests.mfa.helpers import STEP, mfa_grant, mfa_token_of
from tests.resource.conftest import Pyauth, later
from tests.resource.helpers import issued
from tests.servers import loopback_socket, url_of

REALM = "notes"


def notes_api(verifier: AccessTokenVerifier) -> FastAPI:
    """What the README's example builds: a resource server behind pyauth."""
    app = FastAPI()
    auth = BearerAuth(verifier, realm=REALM)

    @app.get("/me")
    async def me(claims: Annotated[AccessTokenClaims, Depends(auth.require())]) -> dict[str, Any]:
        return {"sub": claims.sub, "amr": list(claims.amr)}

    @app.get("/notes")
    async def notes(
        claims: Annotated[AccessTokenClaims, Depends(auth.require(scopes=["notes:read"]))],
    ) -> list[str]:
        return [f"a note of {claims.sub}"]

    @app.delete("/notes")
    async def delete_notes(
        _: Annotated[AccessTokenClaims, Depends(auth.require(scopes=["notes:read", "notes:write"]))],
    ) -> None:
        return None

    @app.get("/admin")
    async def admin(_: Annotated[AccessTokenClaims, Depends(auth.require(roles=["admin"]))]) -> str:
        return "admin"

    @app.get("/vault")
    async def vault(_: Annotated[AccessTokenClaims, Depends(auth.require(amr=["otp"]))]) -> str:
        return "vault"

    @app.get("/mfa-only")
    async def mfa_only(_: Annotated[AccessTokenClaims, Depends(auth.require(amr=["mfa"]))]) -> str:
        return "mfa-only"

    @app.get("/settings")
    async def settings(_: Annotated[AccessTokenClaims, Depends(auth.require(max_age=300))]) -> str:
        return "settings"

    return app


@pytest.fixture
async def notes(verifier: AccessTokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=notes_api(verifier), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://notes.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_user_signed_in_at_pyauth_reads_the_resource(
    pyauth: Pyauth, notes: httpx.AsyncClient
) -> None:
    user_id, tokens = await pyauth.signed_in_user()
    response = await notes.get("/me", headers=tokens.bearer)
    assert response.status_code == 200
    assert response.json() == {"sub": user_id, "amr": ["pwd"]}


async def test_rfc6750_missing_token_is_401_with_www_authenticate_bearer(notes: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await notes.get("/me", headers=headers)
        assert response.status_code == 401
        # RFC 6750 §3.1: no error code when the request carried no bearer token at all.
        assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'


async def test_rfc6750_invalid_token_is_401_with_error_invalid_token(
    pyauth: Pyauth, notes: httpx.AsyncClient, clock: ManualClock
) -> None:
    token = issued(pyauth)
    later(clock, pyauth.settings.ACCESS_TOKEN_TTL_SECONDS + 60)
    for credentials in (token, "not.a.jwt", "eyJhbGciOiJub25lIn0.e30."):
        response = await notes.get("/me", headers=bearer(credentials))
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge == (
            f'Bearer realm="{REALM}", error="invalid_token", '
            'error_description="The access token is invalid or has expired."'
        )


async def test_rfc6750_malformed_authorization_header_is_400_invalid_request(
    pyauth: Pyauth, notes: httpx.AsyncClient
) -> None:
    token = issued(pyauth)
    for value in ("Bearer", "Bearer ", "Bearer a b", 'Bearer "quoted"'):
        response = await notes.get("/me", headers={"Authorization": value})
        assert response.status_code == 400, value
        assert response.headers["www-authenticate"].startswith(
            f'Bearer realm="{REALM}", error="invalid_request"'
        )
    twice = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    assert (await notes.get("/me", headers=twice)).status_code == 400
    # The scheme is case-insensitive (RFC 7235 §2.1).
    assert (await notes.get("/me", headers={"Authorization": f"bEaReR {token}"})).status_code == 200


async def test_rfc6750_insufficient_scope_is_403(pyauth: Pyauth, notes: httpx.AsyncClient) -> None:
    _, tokens = await pyauth.signed_in_user()  # pyauth's password grant: no scope
    response = await notes.get("/notes", headers=tokens.bearer)
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="insufficient_scope", '
        'error_description="The access token lacks a scope this resource requires.", scope="notes:read"'
    )

    reader = issued(pyauth, scope="profile notes:read")
    assert (await notes.get("/notes", headers=bearer(reader))).status_code == 200
    response = await notes.delete("/notes", headers=bearer(reader))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].endswith('scope="notes:read notes:write"')
    writer = issued(pyauth, scope="notes:write notes:read")
    assert (await notes.delete("/notes", headers=bearer(writer))).status_code == 200


async def test_a_missing_role_is_403(pyauth: Pyauth, notes: httpx.AsyncClient) -> None:
    _, tokens = await pyauth.signed_in_user()  # a new user holds the role `user`
    response = await notes.get("/admin", headers=tokens.bearer)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "scope=" not in response.headers["www-authenticate"]
    assert (
        await notes.get("/admin", headers=bearer(issued(pyauth, roles=["user", "admin"])))
    ).status_code == 200


async def test_rfc9470_a_missing_amr_method_is_401_insufficient_user_authentication(
    pyauth: Pyauth, notes: httpx.AsyncClient
) -> None:
    _, tokens = await pyauth.signed_in_user()  # amr ["pwd"]
    response = await notes.get("/vault", headers=tokens.bearer)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="insufficient_user_authentication", '
        'error_description="This resource requires signing in with: otp."'
    )
    assert (await notes.get("/vault", headers=bearer(issued(pyauth, amr=["pwd", "otp"])))).status_code == 200


async def test_rfc9470_a_route_requiring_mfa_takes_a_token_of_a_real_mfa_login_only(
    pyauth: Pyauth, notes: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Issue 12: the library requires `mfa` for a route. A user enrols TOTP at pyauth; the token of the
    password login before is refused with the RFC 9470 challenge, the one of the password + TOTP login
    (pyauth's mfa grant) is accepted."""
    email, tokens = await pyauth.signed_in_email_and_tokens()
    async with pyauth.http() as client:
        started = await client.post("/users/me/mfa/totp", headers=tokens.bearer)
        assert started.status_code == 201, started.text
        secret = started.json()["secret"]
        code = {"code": totp.code_at(secret, clock.now())}
        confirmed = await client.post("/users/me/mfa/totp/confirm", json=code, headers=tokens.bearer)
        assert confirmed.status_code == 200, confirmed.text
        clock.advance(STEP)  # the confirmation spent this step's code
        mfa_token = await mfa_token_of(client, email)
        answer = await mfa_grant(client, mfa_token, otp=totp.code_at(secret, clock.now()))
        assert answer.status_code == 200, answer.text
    password_only = await notes.get("/mfa-only", headers=tokens.bearer)
    assert password_only.status_code == 401
    assert password_only.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="insufficient_user_authentication", '
        'error_description="This resource requires signing in with: mfa."'
    )
    with_mfa = await notes.get("/mfa-only", headers=bearer(answer.json()["access_token"]))
    assert with_mfa.status_code == 200, with_mfa.text


async def test_rfc9470_a_sign_in_older_than_max_age_is_401_with_max_age(
    pyauth: Pyauth, notes: httpx.AsyncClient, clock: ManualClock
) -> None:
    token = issued(pyauth)
    assert (await notes.get("/settings", headers=bearer(token))).status_code == 200
    later(clock, 301)
    response = await notes.get("/settings", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].endswith(
        'error="insufficient_user_authentication", '
        'error_description="This resource requires a more recent sign-in.", max_age="300"'
    )


async def test_pyauth_unreachable_is_503_with_retry_after(pyauth: Pyauth, make_verifier: Any) -> None:
    with loopback_socket() as closed:
        app = notes_api(make_verifier(issuer=url_of(closed)))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://notes.test") as client:
            response = await client.get("/me", headers=bearer(issued(pyauth)))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers


async def test_the_dependency_shows_a_bearer_scheme_in_openapi(notes: httpx.AsyncClient) -> None:
    document = (await notes.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token issued by pyauth.",
    }
    assert document["paths"]["/notes"]["get"]["security"] == [{"HTTPBearer": []}]


def test_requirements_refuse_values_a_challenge_could_not_carry() -> None:
    for bad in ('notes"read', "a b", "", "é"):
        with pytest.raises(ValueError):
            Requirement.of(scopes=[bad])


async def test_a_bare_asgi_app_uses_the_framework_neutral_verifier(
    pyauth: Pyauth, verifier: AccessTokenVerifier
) -> None:
    requirement = Requirement.of(scopes=["notes:read"])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        try:
            claims = await verifier.authenticate(authorization_values(dict(scope)), requirement)
            status, headers, body = 200, [], json.dumps({"sub": claims.sub}).encode()
        except BearerError as error:
            status, body = error.status_code, b""
            headers = [
                (name.lower().encode(), value.encode()) for name, value in error.headers("bare").items()
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bare.test") as client:
        assert (await client.get("/")).headers["www-authenticate"] == 'Bearer realm="bare"'
        _, tokens = await pyauth.signed_in_user()
        assert (await client.get("/", headers=tokens.bearer)).status_code == 403
        allowed = await client.get("/", headers=bearer(issued(pyauth, scope="notes:read")))
        assert allowed.status_code == 200
