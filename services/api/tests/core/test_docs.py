"""The API docs (Swagger UI at /docs, ReDoc at /redoc) work on a host with no internet access: every
script, stylesheet and icon they load is served by pyauth itself, and their CSP allows nothing else."""

import base64
import hashlib
import re

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings

DOCS_PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
# Every URL a page's HTML names: attributes, and the OpenAPI document in Swagger UI's inline script.
URL_IN_PAGE = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
EXPECTED_TYPE = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


def urls_in(html: str) -> list[str]:
    return [attribute or script for attribute, script in URL_IN_PAGE.findall(html)]


def sha256_source(code: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()}'"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_assets_pyauth_serves_itself(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    urls = urls_in(html)
    assert len(urls) >= 3  # the OpenAPI document, the script, the icon (and Swagger UI's stylesheet)
    assert "cdn" not in html.lower()
    assert "//" not in "".join(urls)  # no scheme, no host: paths on pyauth's own origin
    for url in urls:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert asset.headers["content-type"].split(";")[0] in EXPECTED_TYPE[suffix], url
        assert asset.content
    if page == "/docs":
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(urls)
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert b"SwaggerUIBundle" in bundle.content
    else:
        assert "/docs/assets/redoc.standalone.js" in urls


@pytest.mark.parametrize("page", DOCS_PAGES)
async def test_docs_pages_csp_allows_only_pyauth_assets_and_their_own_inline_code(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    directives = (
        part.strip().partition(" ") for part in response.headers["content-security-policy"].split(";")
    )
    policy = {name: sources for name, _, sources in directives}
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"  # the OpenAPI document, and Authorize's POST /auth/token
    # No host, no wildcard, no CDN: 'self' (pyauth, which serves the assets), hashes and keywords only.
    for directive, sources in policy.items():
        for source in sources.split():
            assert source in {"'self'", "'none'", "data:", "blob:", "'unsafe-inline'"} or source.startswith(
                "'sha256-"
            ), (directive, source)
    # Scripts: pyauth's files and exactly the page's own inline scripts, by hash; never 'unsafe-inline'.
    inline_scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert policy["script-src"].split() == ["'self'", *map(sha256_source, inline_scripts)]
    if page == "/docs":
        assert inline_scripts  # Swagger UI is started by an inline script, allowed by its hash alone
        assert policy["style-src"] == "'self'"


async def test_docs_and_their_assets_are_off_when_docs_are_disabled() -> None:
    # Production turns the docs off (test_production_turns_the_docs_off); the assets go with them.
    app = create_app(make_settings(DOCS_ENABLED=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in (*DOCS_PAGES, "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
                assert (await client.get(path)).status_code == 404, path
