"""The JWKS that resource servers verify access tokens with, served from the in-memory key ring. The
discovery documents that point at it are the authorization server's (`app.oauth.discovery`)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.keys.dependencies import KeyRingDep

router = APIRouter(tags=["keys"])

# Resource servers may cache for this long; a rotated-in key is still found sooner, since clients
# such as PyJWKClient refetch the set when a token names a key id they do not hold.
CACHE_CONTROL = {"Cache-Control": "public, max-age=300"}


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens (RFC 7517)")
async def jwks(keyring: KeyRingDep) -> JSONResponse:
    await keyring.maybe_refresh()
    return JSONResponse(keyring.jwks(), headers=CACHE_CONTROL)
