"""The JWKS that resource servers verify access tokens with, served from the in-memory key ring. The
discovery documents that point at it are the authorization server's (`app.oauth.discovery`)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.core.config import Settings
from app.keys.keyring import KeyRing

router = APIRouter(tags=["keys"])

JWKS_PATH = "/.well-known/jwks.json"


@router.get(
    JWKS_PATH,
    summary="Public keys that verify access and ID tokens (RFC 7517)",
    response_class=JSONResponse,
)
async def jwks(request: Request) -> Response:
    """The body was serialized when the key set last changed; a client that sends its ETag back in
    `If-None-Match` gets 304 Not Modified without it (RFC 9110 §13.1.2). Served by the exact-route
    dispatch (`app.main`) too."""
    keyring: KeyRing = request.app.state.keyring
    settings: Settings = request.app.state.settings
    # Relying parties may cache it for JWKS_CACHE_MAX_AGE_SECONDS: a rotated-in key is published at
    # least that long before it signs (KEY_PUBLICATION_LEAD_SECONDS), so a cached set always holds it.
    await keyring.maybe_refresh()
    document = keyring.jwks_document()
    headers = {
        "Cache-Control": f"public, max-age={settings.JWKS_CACHE_MAX_AGE_SECONDS}",
        "ETag": document.etag,
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, document.etag):
        return Response(status_code=304, headers=headers)
    return Response(document.body, media_type="application/json", headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: `*`, or a list of entity tags compared weakly (a W/ prefix is ignored)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
