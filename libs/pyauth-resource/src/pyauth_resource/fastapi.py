"""FastAPI dependencies over `AccessTokenVerifier` (install the `fastapi` extra).

    auth = BearerAuth(verifier, realm="notes")

    @app.get("/notes")
    async def notes(claims: Annotated[AccessTokenClaims, Depends(auth.require(scopes=["notes:read"]))]): ...

A refusal becomes an `HTTPException` with the RFC 6750 challenge in `WWW-Authenticate` (401/403, 400 for
a malformed header) or a 503 with `Retry-After` when pyauth cannot be reached. The routes show in the
OpenAPI document with a bearer security scheme.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pyauth_resource.claims import AccessTokenClaims, Requirement
from pyauth_resource.errors import ResourceError
from pyauth_resource.verifier import AccessTokenVerifier

ClaimsDependency = Callable[..., Awaitable[AccessTokenClaims]]


def http_exception(error: ResourceError, realm: str | None = None) -> HTTPException:
    """The HTTPException that answers `error` (its status, description and challenge headers)."""
    return HTTPException(error.status_code, detail=error.description, headers=dict(error.headers(realm)))


class BearerAuth:
    """Dependencies that verify the request's bearer token with `verifier`."""

    def __init__(self, verifier: AccessTokenVerifier, *, realm: str | None = None) -> None:
        self.verifier = verifier
        self.realm = realm
        # Only for the OpenAPI document: the header is parsed by `bearer_token`, which tells a missing
        # token (401) from a malformed header (400) as RFC 6750 does.
        self._scheme = HTTPBearer(auto_error=False, description="An access token issued by pyauth.")

    def require(
        self,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        amr: Iterable[str] = (),
        max_age: int | None = None,
        introspect: bool = False,
    ) -> ClaimsDependency:
        """A dependency returning the token's claims once it is valid and holds every scope, role and
        `amr` method listed (and, with `max_age`, a sign-in at most that many seconds old). With
        `introspect`, pyauth's introspection endpoint must also say it is active (a revocation shows
        within the introspection cache's few seconds)."""
        requirement = Requirement.of(scopes=scopes, roles=roles, amr=amr, max_age=max_age)
        verifier, realm = self.verifier, self.realm

        async def claims(
            request: Request,
            _: Annotated[HTTPAuthorizationCredentials | None, Depends(self._scheme)],
        ) -> AccessTokenClaims:
            try:
                return await verifier.authenticate(
                    request.headers.getlist("authorization"), requirement, introspect=introspect
                )
            except ResourceError as error:
                raise http_exception(error, realm) from None

        return claims
