"""Discovery: the JWKS that resource servers verify access tokens with, and the authorization server's
metadata (OpenID Connect Discovery and RFC 8414, one document at both addresses) that points at it and
at every endpoint. Both are served from the in-memory key ring."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.config import Settings
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


# What the other domains serve, as literals: `keys` imports no other domain. A test compares each list with
# the code it names (the grant registry, `client_auth`, the UserInfo claims).
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # app.auth.grants.client_auth
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # introspection: no public client
SCOPES = ["openid", "profile", "email"]  # app.auth.scopes.USER_SCOPES: the scopes pyauth gives a meaning
CLAIMS = [  # of access tokens and UserInfo
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "amr",
    "email",
    "email_verified",
    "name",
    "locale",
    "updated_at",
]


def server_metadata(settings: Settings, signing_algorithms: list[str]) -> dict[str, Any]:
    """The authorization server's metadata (RFC 8414 §2; OpenID Connect Discovery §3), true for what is
    served; the authorization endpoint's fields come from `app.oidc.discovery`."""
    issuer = settings.issuer
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/auth/token",
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS,
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "grant_types_supported": [  # in the order of app.auth.grants.registry.GRANTS
            "authorization_code",
            *(["password"] if settings.PASSWORD_GRANT_ENABLED else []),
            "refresh_token",
            "client_credentials",
        ],
        "subject_types_supported": ["public"],
        "scopes_supported": SCOPES,
        "claims_supported": CLAIMS,
        "id_token_signing_alg_values_supported": signing_algorithms,
    }
    metadata.update(authorization_metadata(issuer, signing_algorithms))
    return metadata


@router.get("/.well-known/openid-configuration", summary="OpenID Provider metadata (OIDC Discovery)")
async def openid_configuration(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    await keyring.maybe_refresh()
    return JSONResponse(server_metadata(settings, keyring.signing_algorithms()), headers=_CACHE_CONTROL)


@router.get("/.well-known/oauth-authorization-server", summary="Authorization server metadata (RFC 8414)")
async def oauth_authorization_server(keyring: KeyRingDep, settings: SettingsDep) -> JSONResponse:
    """The same document as `/.well-known/openid-configuration`."""
    await keyring.maybe_refresh()
    return JSONResponse(server_metadata(settings, keyring.signing_algorithms()), headers=_CACHE_CONTROL)
