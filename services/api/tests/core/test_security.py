"""HTTP hardening: body and depth limits, media types, security headers, CORS, and production mode
refusing development defaults."""

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.core.security import API_CSP, json_depth_exceeds
from app.main import create_app
from tests.conftest import make_settings, with_overrides


async def test_every_response_says_nosniff_and_no_store(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/health/live"),
        await client.get("/nope"),
        await client.post("/auth/token"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_jwks_keeps_its_own_cache_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.headers["cache-control"].startswith("public")


async def test_docs_are_served_without_the_api_csp(client: httpx.AsyncClient) -> None:
    # The docs carry a policy of their own (tests/core/test_docs.py), never the API's, which blocks them.
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].encode() != API_CSP


async def test_a_body_over_the_limit_gets_413(client: httpx.AsyncClient) -> None:
    body = b'{"email": "' + b"a" * (11 * 1024 * 1024) + b'"}'
    response = await client.post("/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


async def test_a_guards_refusal_leaves_through_the_whole_edge(client: httpx.AsyncClient) -> None:
    """The guards answer inside the request edge: their refusal has the security headers and a request id,
    as every answer does (the metrics count it: `metrics/test_requests.py`)."""
    response = await client.post("/auth/register", content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"].encode() == API_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert len(response.headers["x-request-id"]) == 32


async def test_a_chunked_body_over_the_limit_gets_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096

    response = await client.post(
        "/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x"])
async def test_other_media_types_get_415(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post("/auth/register", content=b"{}", headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


async def test_a_form_sent_to_a_json_endpoint_gets_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", data={"email": "a@example.org", "password": "x"})
    assert response.status_code == 415


async def test_deeply_nested_json_gets_400_before_parsing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", content=b"[" * 50_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "json_too_deep"


def test_the_depth_scan_ignores_brackets_inside_strings() -> None:
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[[[", "b": "\\"{{{{{{{"}', 3)
    assert json_depth_exceeds(b'{"a": [[[1]]]}', 3)
    assert not json_depth_exceeds(b'{"a": [[1]]}', 3)


async def test_cors_allows_only_listed_origins(settings: Settings, engine: object) -> None:
    app = create_app(make_settings(CORS_ORIGINS=["https://app.example"]))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            allowed = await client.options(
                "/auth/token",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            )
            refused = await client.options(
                "/auth/token",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            )
    assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"KEY_ENCRYPTION_KEY": "dev-only-key-encryption-key-change-me-in-production"}, "KEY_ENCRYPTION_KEY"),
        ({"DATABASE_URL": "postgresql+asyncpg://pyauth:pyauth@db:5432/pyauth"}, "database password"),
        ({"DEBUG": True}, "DEBUG"),
        ({"PUBLIC_BASE_URL": "http://auth.example"}, "https://"),
    ],
)
def test_production_refuses_development_defaults(
    production_secrets: dict[str, object], overrides: dict[str, object], problem: str
) -> None:
    safe: dict[str, object] = {
        "ENVIRONMENT": "production",
        **production_secrets,
        "PUBLIC_BASE_URL": "https://auth.example",
        "MAIL_BACKEND": "smtp",
    }
    make_settings(**safe)  # the safe baseline starts
    with pytest.raises(ValidationError, match=problem):
        make_settings(**with_overrides(safe, overrides))


def test_production_turns_the_docs_off(production_secrets: dict[str, object]) -> None:
    safe: dict[str, object] = {
        "ENVIRONMENT": "production",
        **production_secrets,
        "PUBLIC_BASE_URL": "https://auth.example",
        "MAIL_BACKEND": "smtp",
    }
    assert make_settings(**safe).docs_enabled is False
    assert make_settings(**safe, DOCS_ENABLED=False).docs_enabled is False
    assert make_settings().docs_enabled is True


@pytest.mark.parametrize("path", ["/auth/register", "/auth/token", "/auth/verify/request"])
@pytest.mark.parametrize("body", [b"[" * 50_000, b"[" * 5_000 + b"]" * 5_000, b'{"email": "a@example.org"}'])
async def test_a_body_without_a_content_type_gets_415_before_any_parser(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    # Some FastAPI versions parse a body without Content-Type as JSON, past the depth guard; the guard
    # refuses such a body itself, whatever the endpoint takes (JSON or a form) and whatever it holds.
    response = await client.post(path, content=body)
    assert "content-type" not in response.request.headers
    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "detail": "A body needs a Content-Type: application/json, or a form for the token endpoints.",
    }


async def test_an_empty_body_needs_no_content_type(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout")
    assert response.status_code == 401  # past the guard: the endpoint asks for a token
