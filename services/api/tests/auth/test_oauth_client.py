"""An off-the-shelf OAuth 2.0 client library (Authlib) drives the password and refresh grants without
glue, and then calls the API with the token it holds."""

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import FastAPI

from tests.auth.helpers import PASSWORD, register, unique_email


async def test_authlib_password_and_refresh_grants(app: FastAPI, client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    token_url = "http://testserver/auth/token"
    async with AsyncOAuth2Client(
        client_id="pyauth",  # the built-in public client (an unregistered id is invalid_client)
        token_endpoint=token_url,
        token_endpoint_auth_method="none",
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
    ) as oauth:
        token = await oauth.fetch_token(token_url, username=email, password=PASSWORD)
        assert token["token_type"] == "Bearer"
        me = await oauth.get("/users/me")
        assert me.status_code == 200
        assert me.json()["email"] == email

        refreshed = await oauth.refresh_token(token_url, refresh_token=token["refresh_token"])
        assert refreshed["refresh_token"] != token["refresh_token"]
        assert (await oauth.get("/users/me")).status_code == 200
