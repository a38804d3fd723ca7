"""`/.well-known/jwks.json` and `/.well-known/openid-configuration`, and a resource server that
verifies pyauth's tokens with nothing but the served JWKS, over real HTTP."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth.issuing import issue_access_token
from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.keyring import REFRESH_INTERVAL, KeyRing
from tests.keys.helpers import keys_app
from tests.servers import loopback_socket, serving


@pytest.fixture
async def client(keyring: KeyRing, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=keys_app(keyring, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def statements(connection: AsyncConnection) -> Iterator[list[str]]:
    """Every SQL statement sent on the test's connection while the test runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    sync_connection = connection.sync_connection
    assert sync_connection is not None
    event.listen(sync_connection, "before_cursor_execute", record)
    yield sent
    event.remove(sync_connection, "before_cursor_execute", record)


async def test_jwks_is_served_from_memory_with_cache_headers(
    client: httpx.AsyncClient, keyring: KeyRing, clock: ManualClock, statements: list[str]
) -> None:
    for _ in range(3):
        response = await client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=300"
        assert response.json() == keyring.jwks()
    assert statements == []

    clock.advance(REFRESH_INTERVAL)
    await client.get("/.well-known/jwks.json")
    await client.get("/.well-known/jwks.json")
    assert [sql.split()[0] for sql in statements if "signing_keys" in sql] == ["SELECT"]  # one refresh


async def test_jwks_etag_answers_304_until_the_key_set_changes(
    client: httpx.AsyncClient, keyring: KeyRing, clock: ManualClock, rotate: Callable[[], Awaitable[str]]
) -> None:
    """RFC 9110 §13.1.2: If-None-Match with the current ETag (also weak, in a list, or `*`) answers 304
    without a body; another tag gets the set. A rotation makes a new body and so a new ETag."""
    first = await client.get("/.well-known/jwks.json")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await client.get("/.well-known/jwks.json", headers={"If-None-Match": sent})
        assert cached.status_code == 304, sent
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert cached.headers["cache-control"] == "public, max-age=300"
    stale = await client.get("/.well-known/jwks.json", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.json() == first.json()

    await rotate()
    clock.advance(REFRESH_INTERVAL)
    rotated = await client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert rotated.status_code == 200
    assert rotated.headers["etag"] != etag
    assert rotated.json() == keyring.jwks() != first.json()


async def test_jwks_lists_exactly_the_public_key(client: httpx.AsyncClient, keyring: KeyRing) -> None:
    # issue 11: the RSA key of RS256 ID tokens is published next to the EC key.
    jwk, rsa_jwk = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (keyring.current.kid, "ES256", "sig")
    assert set(rsa_jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert (rsa_jwk["kid"], rsa_jwk["alg"], rsa_jwk["use"]) == (
        keyring.signing_key("RS256").kid,
        "RS256",
        "sig",
    )


async def test_openid_configuration(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    issuer = settings.issuer
    assert response.json() == {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/auth/token",
        # issue 11: confidential clients authenticate with their secret (app.auth.grants.client_auth)
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        # issue 11: revocation per client (RFC 7009), introspection (RFC 7662), UserInfo (OIDC Core §5.3)
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        # issue 11: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2.1)
        "end_session_endpoint": f"{issuer}/oauth2/logout",
        # issue 12: the mfa grant, the second step of a password login
        "grant_types_supported": [
            "authorization_code",
            "password",
            "refresh_token",
            "client_credentials",
            "urn:pyauth:params:oauth:grant-type:mfa",
        ],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "amr",
            "acr",  # issue 12: ID tokens carry acr too
            "email",
            "email_verified",
            "name",
            "locale",
            "updated_at",
        ],
        # issue 11: the authorization endpoint and its code flow (app.oidc.discovery)
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        # issue 11: RS256 for clients that register it, with the RSA key of the JWKS
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["en", "de"],
        # issue 12: what acr_values can ask for (app.oidc.discovery)
        "acr_values_supported": ["urn:pyauth:acr:pwd", "urn:pyauth:acr:mfa"],
        # request objects refused (OpenID Connect Core §3.1.2.6) and the claims parameter not read, said
        # so: left out, request_uri_parameter_supported would mean true (OpenID Connect Discovery §3)
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }


async def test_a_resource_server_verifies_tokens_with_the_served_jwks(
    keyring: KeyRing, settings: Settings, clock: ManualClock, rotate: Callable[[], Awaitable[str]]
) -> None:
    # PyJWT checks exp/nbf with the system clock here, as a real resource server would: `clock`
    # starts at the real time and is not moved.
    async with serving(keys_app(keyring, settings), loopback_socket()) as base_url:
        client = jwt.PyJWKClient(f"{base_url}/.well-known/jwks.json", cooldown_duration=0)

        def verify(token: str) -> dict[str, Any]:
            signing_key = client.get_signing_key_from_jwt(token)
            assert signing_key.algorithm_name == "ES256"
            return jwt.decode(
                token,
                signing_key.key,
                algorithms=["ES256", "EdDSA"],
                audience=settings.JWT_AUDIENCE,
                issuer=settings.issuer,
            )

        token, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s1", now=clock.now())
        assert (await asyncio.to_thread(verify, token))["sub"] == "user-1"

        # After a rotation the resource server finds the new key in the same JWKS, and the old one.
        await rotate()
        await keyring.refresh()
        rotated, _ = issue_access_token(keyring, settings, subject="user-2", session_id="s2", now=clock.now())
        assert jwt.get_unverified_header(rotated)["kid"] != jwt.get_unverified_header(token)["kid"]
        assert (await asyncio.to_thread(verify, rotated))["sub"] == "user-2"
        assert (await asyncio.to_thread(verify, token))["sub"] == "user-1"

        # A tampered token fails there too.
        header, payload, signature = rotated.split(".")
        with pytest.raises(jwt.InvalidSignatureError):
            await asyncio.to_thread(verify, f"{header}.{payload}.{signature[:-4]}AAAA")
