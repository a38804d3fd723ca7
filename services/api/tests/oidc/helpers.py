"""Client-side steps of the code-flow tests: register a client that may use it, sign a browser in, ask the
authorization endpoint for a code and exchange it, as a relying party does."""

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from tests.admin.helpers import admin_account
from tests.auth.helpers import signed_up
from tests.clients.helpers import register_client
from tests.web.helpers import sign_in

REDIRECT_URI = "https://app.example.com/callback"
AUTHORIZE = "/oauth2/authorize"


def pkce_pair() -> tuple[str, str]:
    """A verifier and its S256 challenge, computed as RFC 7636 §4.2 says (not with pyauth's code)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def code_flow_client(
    client: httpx.AsyncClient, db_session: AsyncSession, **fields: Any
) -> dict[str, Any]:
    """A first-party public client allowed the code flow, with `openid` and `email`."""
    admin = await admin_account(client, db_session)
    body = {
        "type": "public",
        "redirect_uris": [REDIRECT_URI],
        "scopes": ["openid", "email"],
        "first_party": True,
        **fields,
    }
    return await register_client(client, admin, **body)


async def signed_in_browser(client: httpx.AsyncClient) -> str:
    """A user signed in on the hosted pages (the client keeps the SSO cookie); their email."""
    email, _ = await signed_up(client)
    response = await sign_in(client, email)
    assert response.status_code == 303, response.text
    return email


def authorize_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def location_query(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect to the client (one value per name)."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def authorized_code(client: httpx.AsyncClient, client_id: str, challenge: str, **extra: str) -> str:
    response = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, **extra))
    query = location_query(response)
    assert "code" in query, query
    return query["code"]


async def exchange(
    client: httpx.AsyncClient,
    client_id: str,
    code: str,
    verifier: str,
    *,
    redirect_uri: str = REDIRECT_URI,
) -> httpx.Response:
    return await client.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


async def verified_id_token(
    client: httpx.AsyncClient,
    id_token: str,
    *,
    audience: str,
    issuer: str,
    algorithms: tuple[str, ...] = ("ES256",),
) -> Any:
    """The ID token's claims, checked with PyJWT against the published JWKS (fetched through `client`)."""
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(jwt.PyJWK.from_dict(jwk) for jwk in jwks["keys"] if jwk["kid"] == kid)
    return jwt.decode(
        id_token,
        key=key.key,
        algorithms=list(algorithms),
        audience=audience,
        issuer=issuer,
        leeway=120,  # the tests move the app's clock ahead of the real one
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
    )
