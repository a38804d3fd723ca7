"""Redirect URIs are registered only when they can be matched exactly and safely (OAuth 2.1 §2.3.1,
RFC 9700 §2.1 and §4.1, RFC 6749 §3.1.2, RFC 8252 §7.3)."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.redirect_uris import redirect_uri_problem
from tests.admin.helpers import admin_account
from tests.clients.helpers import register_client

ACCEPTED = [
    "https://app.example.com/callback",
    "https://app.example.com:8443/cb?tenant=1",
    "http://127.0.0.1:53127/callback",
    "http://[::1]/callback",
    "http://localhost:3000/callback",
]
REFUSED = [
    ("http://app.example.com/callback", "not loopback"),
    ("https://app.example.com/callback#frag", "fragment"),
    ("https://app.example.com/callback#", "fragment"),
    ("/callback", "absolute"),
    ("app.example.com/callback", "absolute"),
    ("https://*.example.com/callback", "wildcard"),
    ("https://user:pw@app.example.com/callback", "user name"),
    ("javascript:alert(1)", "absolute"),
    ("ftp://app.example.com/cb", "https"),
    ("https://app.example.com/call back", "whitespace"),
    ("https://app.example.com:99999/cb", "valid"),
    ("http://127.0.0.1.evil.example/cb", "not loopback"),
]


@pytest.mark.parametrize("uri", ACCEPTED)
def test_rfc9700_exact_https_or_loopback_http_redirect_uris_are_accepted(uri: str) -> None:
    assert redirect_uri_problem(uri) is None


@pytest.mark.parametrize(("uri", "why"), REFUSED)
def test_rfc9700_redirect_uris_that_cannot_be_matched_exactly_and_safely_are_refused(
    uri: str, why: str
) -> None:
    problem = redirect_uri_problem(uri)
    assert problem is not None and why in problem


async def test_a_client_with_a_fragment_redirect_uri_is_a_422_invalid_redirect_uri(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    body = {
        "name": "App",
        "type": "public",
        "redirect_uris": ["https://ok.example/cb", "https://x.example/#a"],
    }
    response = await client.post("/admin/clients", json=body, headers=admin.bearer)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_redirect_uri"
    assert "redirect_uris[1]" in response.json()["detail"]


async def test_post_logout_redirect_uris_follow_the_same_rules(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, type="public")
    response = await client.patch(
        f"/admin/clients/{created['client_id']}",
        json={"post_logout_redirect_uris": ["http://evil.example/bye"]},
        headers=admin.bearer,
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_redirect_uri"
