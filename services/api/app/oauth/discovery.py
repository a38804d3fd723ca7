"""The authorization server's metadata (OpenID Connect Discovery §3 and RFC 8414 §2, one document at both
`/.well-known/` addresses): the endpoints, and what each accepts, true for what is served. A grant type is
listed because its handler is in the grant registry and turned on (the endpoints pass
`GRANTS.served_grant_types`); the authorization endpoint's fields come
from `app.oidc.discovery`."""

from typing import Any

from app.core.config import Settings
from app.oidc.discovery import authorization_metadata

# What other modules serve, as literals; a test compares each list with the code it names (`client_auth`,
# the user scopes, the UserInfo claims). The grant types come from the grant registry itself.
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
    "acr",
    "email",
    "email_verified",
    "name",
    "locale",
    "updated_at",
]


def server_metadata(
    settings: Settings, id_token_algorithms: list[str], grant_types: list[str]
) -> dict[str, Any]:
    """The authorization server's metadata (RFC 8414 §2; OpenID Connect Discovery §3), true for what is
    served; the authorization endpoint's fields come from `app.oidc.discovery`."""
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/auth/token",
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS,
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "grant_types_supported": grant_types,
        "scopes_supported": SCOPES,
        "claims_supported": CLAIMS,
        # the authorization endpoint, response types, PKCE, subject types, ID-token algorithms
        **authorization_metadata(issuer, id_token_algorithms),
    }
