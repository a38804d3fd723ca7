"""Issue 11: the ID token is signed with the algorithm the client registered (`id_token_signed_response_alg`):
ES256 by default, RS256 with the key ring's RSA key, both published in the JWKS (OpenID Connect Core §3.1.3.7,
OpenID Connect Registration §2). Access tokens stay ES256 whatever the client's ID-token algorithm."""

import base64
import hashlib
from typing import Any

import httpx
import jwt
import pytest
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from tests.admin.helpers import admin_account
from tests.oidc.helpers import (
    REDIRECT_URI,
    authorized_code,
    code_flow_client,
    exchange,
    pkce_pair,
    signed_in_browser,
    verified_id_token,
)


async def _code_flow_tokens(client: httpx.AsyncClient, client_id: str) -> dict[str, Any]:
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    response = await exchange(client, client_id, code, verifier)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def _at_hash(access_token: str) -> str:
    # OpenID Connect Core §3.1.3.6: the left half of the hash named by the ID token's alg (SHA-256 for RS256).
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


async def test_oidcc_server_rs256_client_gets_an_rs256_id_token_that_validates_against_the_jwks(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI, clock: ManualClock
) -> None:
    client_id = (await code_flow_client(client, db_session, id_token_signed_response_alg="RS256"))[
        "client_id"
    ]
    tokens = await _code_flow_tokens(client, client_id)
    id_token, access_token = tokens["id_token"], tokens["access_token"]
    issuer = str(app.state.settings.issuer)

    header = jwt.get_unverified_header(id_token)
    assert (header["alg"], header["typ"]) == ("RS256", "JWT")
    jwks = (await client.get("/.well-known/jwks.json")).json()
    [rsa_jwk] = [jwk for jwk in jwks["keys"] if jwk["kid"] == header["kid"]]
    assert (rsa_jwk["kty"], rsa_jwk["alg"], rsa_jwk["use"]) == ("RSA", "RS256", "sig")
    assert jwt.PyJWK.from_dict(rsa_jwk).key.key_size >= 2048

    # PyJWT, with the key from the served JWKS and RS256 only.
    claims = await verified_id_token(
        client, id_token, audience=client_id, issuer=issuer, algorithms=("RS256",)
    )
    assert claims["at_hash"] == _at_hash(access_token)
    assert (claims["nonce"], claims["azp"]) == ("nonce-456", client_id)

    # Authlib: its JWK import of the whole set, its JWT decoding limited to RS256, its ID-token checks.
    authlib_claims = JsonWebToken(["RS256"]).decode(
        id_token,
        key=JsonWebKey.import_key_set(jwks),
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": "nonce-456", "client_id": client_id, "access_token": access_token},
    )
    authlib_claims.validate(now=int(clock.now().timestamp()))  # iss, aud, exp, iat, nonce, azp, at_hash
    assert authlib_claims["sub"] == claims["sub"]
    # An ES256-only relying party refuses it: the algorithm is the client's, not the default.
    with pytest.raises(jwt.InvalidAlgorithmError):
        await verified_id_token(client, id_token, audience=client_id, issuer=issuer)

    # The access token stays ES256, signed with the EC key, and works.
    assert jwt.get_unverified_header(access_token)["alg"] == "ES256"
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {access_token}"})
    assert me.status_code == 200, me.text


async def test_oidcc_server_es256_client_still_gets_an_es256_id_token(
    client: httpx.AsyncClient, db_session: AsyncSession, app: FastAPI
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    tokens = await _code_flow_tokens(client, client_id)

    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "ES256"
    assert header["kid"] == jwt.get_unverified_header(tokens["access_token"])["kid"]  # the EC key
    claims = await verified_id_token(
        client, tokens["id_token"], audience=client_id, issuer=str(app.state.settings.issuer)
    )
    assert claims["at_hash"] == _at_hash(tokens["access_token"])


async def test_the_jwks_and_discovery_offer_both_id_token_algorithms(client: httpx.AsyncClient) -> None:
    jwks = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert {(jwk["kty"], jwk["alg"], jwk["use"]) for jwk in jwks} >= {
        ("EC", "ES256", "sig"),
        ("RSA", "RS256", "sig"),
    }
    assert all(jwk["kid"] for jwk in jwks)
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    assert metadata["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]


@pytest.mark.parametrize("algorithm", ["HS256", "none", "RS512", "PS256", "EdDSA", "es256", ""])
async def test_a_client_registering_an_unknown_id_token_algorithm_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession, algorithm: str
) -> None:
    admin = await admin_account(client, db_session)
    body = {
        "name": "Example app",
        "type": "public",
        "redirect_uris": [REDIRECT_URI],
        "id_token_signed_response_alg": algorithm,
    }
    created = await client.post("/admin/clients", json=body, headers=admin.bearer)
    assert created.status_code == 422, created.text
    # Nor can an existing client be changed to one.
    client_id = (await code_flow_client(client, db_session))["client_id"]
    patched = await client.patch(
        f"/admin/clients/{client_id}", json={"id_token_signed_response_alg": algorithm}, headers=admin.bearer
    )
    assert patched.status_code == 422, patched.text
