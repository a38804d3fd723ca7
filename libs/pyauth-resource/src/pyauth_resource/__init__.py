"""pyauth-resource: verify pyauth's access tokens in a resource server.

    verifier = AccessTokenVerifier("https://auth.example.com", audience="pyauth")
    claims = await verifier.authenticate(authorization_header, Requirement.of(scopes=["notes:read"]))

`pyauth_resource.fastapi` turns the same into a FastAPI dependency (install the `fastapi` extra).
"""

from pyauth_resource.claims import AccessTokenClaims, Requirement
from pyauth_resource.errors import (
    BearerError,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ResourceError,
    VerifierUnavailable,
)
from pyauth_resource.fetches import Fetches
from pyauth_resource.introspection import Introspection
from pyauth_resource.verifier import AccessTokenVerifier, authorization_values, bearer_token

__all__ = [
    "AccessTokenClaims",
    "AccessTokenVerifier",
    "BearerError",
    "Fetches",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "Introspection",
    "InvalidRequest",
    "InvalidToken",
    "MissingToken",
    "Requirement",
    "ResourceError",
    "VerifierUnavailable",
    "authorization_values",
    "bearer_token",
]
