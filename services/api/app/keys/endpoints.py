"""Public key discovery: the JWKS that resource servers verify access tokens with, and the
OpenID-style metadata that points at it. Both are served from the in-memory key ring."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.dependencies import SettingsDep
from app.keys.dependencies import KeyRingDep
from app.oidc.discovery import authorization_metadata

router = APIRouter(tags=["keys"])

# Resource servers may cache for this long; a rotated-in key is still found sooner, since clients
# such as PyJWKClient refetch the set when a token names a key id they do not hold.
_CACHE_CONTROL = {"Cache-Control": "public, max-age=300"}


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens (RFC 7517)")
async def jwks(keyring: KeyRingDep) -> JSONResponse:
    await keyring.maybe_refresh()
    return JSONResponse(keyring.jwks(), headers=_CACHE_CONTROL)


@router.get("/.well-known/openid-configuration", summary="Authorization server metadata")
async def openid_configuration(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    await keyring.maybe_refresh()
    issuer = settings.issuer
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/auth/token",
        "revocation_endpoint": f"{issuer}/auth/revoke",
        "grant_types_supported": [
            *(["password"] if settings.PASSWORD_GRANT_ENABLED else []),
            "refresh_token",
            "authorization_code",
        ],
        # What app.auth.grants.client_auth accepts (keys imports no other domain, hence the literal).
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "response_types_supported": [],
        "scopes_supported": [],
        "id_token_signing_alg_values_supported": keyring.signing_algorithms(),
    }
    metadata.update(authorization_metadata(issuer, keyring.signing_algorithms()))
    return JSONResponse(metadata, headers=_CACHE_CONTROL)
