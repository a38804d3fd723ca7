"""Acceptance of issue 11 with an off-the-shelf relying party: Authlib's OAuth2 client drives the code flow
with PKCE against pyauth, the browser's part done by httpx following the sign-in form (with its CSRF token),
and the ID token is validated against the published JWKS with Authlib's and PyJWT's own checks."""

import secrets

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oidc.core import CodeIDToken
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import PASSWORD, signed_up
from tests.oidc.helpers import REDIRECT_URI, code_flow_client, location_query, verified_id_token
from tests.web.helpers import csrf_token_of


async def test_authlib_code_flow_with_pkce_and_an_id_token_validated_against_the_jwks(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session))["client_id"]
    email, _ = await signed_up(client)
    issuer = str(app.state.settings.issuer)
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    authorize_path = metadata["authorization_endpoint"].removeprefix(issuer)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    async with AsyncOAuth2Client(
        client_id=client_id,
        token_endpoint_auth_method="none",
        redirect_uri=REDIRECT_URI,
        scope="openid email",
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    ) as oauth:
        url, state = oauth.create_authorization_url(
            f"http://testserver{authorize_path}", code_verifier=verifier, nonce=nonce
        )
        # The browser: to the sign-in page, sign in there, back to the authorization endpoint.
        to_signin = await client.get(url)
        assert to_signin.status_code == 303
        page = await client.get(to_signin.headers["location"])
        form = {"email": email, "password": PASSWORD, "csrf_token": csrf_token_of(page)}
        return_to = page.text.split('name="return_to" value="', 1)[1].split('"', 1)[0]
        signed_in = await client.post("/signin", data={**form, "return_to": _unescaped(return_to)})
        assert signed_in.status_code == 303, signed_in.text
        callback = await client.get(signed_in.headers["location"])
        assert location_query(callback)["state"] == state

        token = await oauth.fetch_token(
            "http://testserver/auth/token",
            authorization_response=callback.headers["location"],
            code_verifier=verifier,
        )

    jwks = JsonWebKey.import_key_set((await client.get("/.well-known/jwks.json")).json())
    claims = JsonWebToken(metadata["id_token_signing_alg_values_supported"]).decode(
        token["id_token"],
        key=jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=120)  # checks iss, aud, exp, iat, nonce, azp and at_hash
    pyjwt_claims = await verified_id_token(client, token["id_token"], audience=client_id, issuer=issuer)
    assert pyjwt_claims["sub"] == claims["sub"]
    assert pyjwt_claims["email"] == email


def _unescaped(value: str) -> str:
    """The form's hidden field as the browser would send it (the page escapes `&` in HTML)."""
    return value.replace("&amp;", "&").replace("&#39;", "'").replace("&quot;", '"')
