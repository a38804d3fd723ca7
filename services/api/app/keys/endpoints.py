"""The JWKS that resource servers verify access tokens with, served from the in-memory key ring. The
discovery documents that point at it are the authorization server's (`app.oauth.discovery`)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.dependencies import SettingsDep
from app.keys.dependencies import KeyRingDep

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify access and ID tokens (RFC 7517)")
async def jwks(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    # Relying parties may cache it for JWKS_CACHE_MAX_AGE_SECONDS: a rotated-in key is published at
    # least that long before it signs (KEY_PUBLICATION_LEAD_SECONDS), so a cached set always holds it.
    await keyring.maybe_refresh()
    cache_control = f"public, max-age={settings.JWKS_CACHE_MAX_AGE_SECONDS}"
    return JSONResponse(keyring.jwks(), headers={"Cache-Control": cache_control})
