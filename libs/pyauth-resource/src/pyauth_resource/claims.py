"""The verified claims of an access token, typed, and the requirements a route puts on them (scopes,
roles, `amr` methods, a recent sign-in)."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyauth_resource.errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    is_scope_token,
)


class MalformedClaim(Exception):
    """A claim of the wrong type: the token is refused."""


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """An access token that passed every check. `raw` holds every claim as the token carried it."""

    sub: str
    issuer: str
    audience: tuple[str, ...]
    exp: int
    iat: int | None
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    amr: tuple[str, ...]
    auth_time: int | None
    client_id: str | None
    jti: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def scope(self) -> str:
        """The scopes as the `scope` claim spells them (RFC 9068 §2.2.3), space-separated."""
        return " ".join(self.scopes)

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes) <= set(self.scopes)

    def has_roles(self, *roles: str) -> bool:
        return set(roles) <= set(self.roles)


def _string(raw: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise MalformedClaim(f"{name} is not a non-empty string")
    return value


def _integer(raw: Mapping[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedClaim(f"{name} is not a NumericDate")
    return int(value)


def _strings(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedClaim(f"{name} is not a list of strings")
    return tuple(dict.fromkeys(value))


def _scopes(raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("scope")
    if value is None:
        return ()
    if not isinstance(value, str):
        raise MalformedClaim("scope is not a string")
    scopes = tuple(dict.fromkeys(value.split()))
    if not all(is_scope_token(scope) for scope in scopes):
        raise MalformedClaim("scope holds characters a scope token may not")
    return scopes


def claims_from_payload(raw: Mapping[str, Any]) -> AccessTokenClaims:
    """Typed claims of a payload whose signature, issuer, audience and times were already checked."""
    audience = raw.get("aud")
    audiences = (audience,) if isinstance(audience, str) else _strings(raw, "aud")
    exp = _integer(raw, "exp")
    if exp is None:
        raise MalformedClaim("exp is missing")
    return AccessTokenClaims(
        sub=_string(raw, "sub", required=True) or "",
        issuer=_string(raw, "iss", required=True) or "",
        audience=audiences,
        exp=exp,
        iat=_integer(raw, "iat"),
        scopes=_scopes(raw),
        roles=_strings(raw, "roles"),
        amr=_strings(raw, "amr"),
        auth_time=_integer(raw, "auth_time"),
        client_id=_string(raw, "client_id", required=False),
        jti=_string(raw, "jti", required=False),
        raw=raw,
    )


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a route needs beyond a valid token. Every listed scope, role and `amr` method is required
    (all of them, not any); `max_age` (seconds) requires a sign-in (`auth_time`) at most that old."""

    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    amr: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def of(
        cls,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        amr: Iterable[str] = (),
        max_age: int | None = None,
    ) -> "Requirement":
        requirement = cls(tuple(scopes), tuple(roles), tuple(amr), max_age)
        # Each value may end up in a challenge header: refuse at configuration time what could not.
        for value in (*requirement.scopes, *requirement.roles, *requirement.amr):
            if not isinstance(value, str) or not is_scope_token(value):
                raise ValueError(f"not a valid scope, role or amr value: {value!r}")
        if max_age is not None and max_age < 0:
            raise ValueError("max_age must not be negative")
        return requirement

    def check(self, claims: AccessTokenClaims, now: Callable[[], float]) -> None:
        """Raise `InsufficientScope` (403) or `InsufficientUserAuthentication` (401) if unmet."""
        if not claims.has_scopes(*self.scopes):
            raise InsufficientScope("The access token lacks a scope this resource requires.", self.scopes)
        if not claims.has_roles(*self.roles):
            raise InsufficientScope("The user lacks a role this resource requires.")
        if not set(self.amr) <= set(claims.amr):
            methods = " ".join(self.amr)
            raise InsufficientUserAuthentication(f"This resource requires signing in with: {methods}.")
        # A token that does not say when the user signed in cannot show a recent sign-in.
        if self.max_age is not None and (claims.auth_time is None or now() - claims.auth_time > self.max_age):
            raise InsufficientUserAuthentication(
                "This resource requires a more recent sign-in.", max_age=self.max_age
            )
