"""Why a request is refused, as RFC 6750 (and RFC 9470) name it: each error knows its HTTP status and the
`WWW-Authenticate: Bearer` challenge that goes with it, so any framework can answer it the same way."""

import re
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final

# RFC 6749 §A.4 / RFC 6750 §3: scope tokens are NQCHAR (no space, no `"`, no `\`), and error
# descriptions are printable ASCII without `"` or `\`. Values outside these never reach a header.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_QUOTABLE: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def is_scope_token(value: str) -> bool:
    return _SCOPE_TOKEN.fullmatch(value) is not None


def _quoted(name: str, value: str) -> str:
    if _QUOTABLE.fullmatch(value) is None:
        raise ValueError(f"{name} has characters a challenge may not carry: {value!r}")
    return f'{name}="{value}"'


class ResourceError(Exception):
    """Any refusal this library answers: an HTTP status and the headers to send with it."""

    status_code: ClassVar[int] = 500
    description: str

    def __init__(self, description: str) -> None:
        self.description = description
        super().__init__(description)

    def headers(self, realm: str | None = None) -> Mapping[str, str]:
        return {}


class BearerError(ResourceError):
    """A refusal with an RFC 6750 §3 challenge: `WWW-Authenticate: Bearer realm=…, error=…`."""

    error: ClassVar[str | None] = None

    def challenge_parameters(self) -> list[tuple[str, str]]:
        """Parameters after `error` and `error_description`."""
        return []

    def www_authenticate(self, realm: str | None = None) -> str:
        parameters: list[str] = []
        if realm is not None:
            parameters.append(_quoted("realm", realm))
        if self.error is not None:
            parameters.append(_quoted("error", self.error))
            parameters.append(_quoted("error_description", self.description))
        parameters.extend(_quoted(name, value) for name, value in self.challenge_parameters())
        return "Bearer " + ", ".join(parameters) if parameters else "Bearer"

    def headers(self, realm: str | None = None) -> Mapping[str, str]:
        return {"WWW-Authenticate": self.www_authenticate(realm)}


class MissingToken(BearerError):
    """No bearer token at all (RFC 6750 §3.1: the challenge then carries no error code)."""

    status_code = 401

    def __init__(self, description: str = "A bearer access token is required.") -> None:
        super().__init__(description)


class InvalidRequest(BearerError):
    """A malformed Authorization header (RFC 6750 §3.1 `invalid_request`)."""

    status_code = 400
    error = "invalid_request"


class InvalidToken(BearerError):
    """Any refusal of the token itself: bad signature, wrong issuer, audience or type, expired, revoked.
    The description never says which check failed (that would help a forger); the log at DEBUG does."""

    status_code = 401
    error = "invalid_token"

    def __init__(self, description: str = "The access token is invalid or has expired.") -> None:
        super().__init__(description)


class InsufficientScope(BearerError):
    """A valid token without what the route needs (RFC 6750 §3.1 `insufficient_scope`). `scope` lists
    the scopes the route requires; it is empty when a role is what is missing."""

    status_code = 403
    error = "insufficient_scope"

    def __init__(self, description: str, scope: Sequence[str] = ()) -> None:
        super().__init__(description)
        self.scope = tuple(scope)

    def challenge_parameters(self) -> list[tuple[str, str]]:
        return [("scope", " ".join(self.scope))] if self.scope else []


class InsufficientUserAuthentication(BearerError):
    """The user signed in, but not in a way the route accepts: a missing `amr` method, or a sign-in
    older than `max_age` (RFC 9470 step-up: 401, so that the client signs the user in again)."""

    status_code = 401
    error = "insufficient_user_authentication"

    def __init__(self, description: str, max_age: int | None = None) -> None:
        super().__init__(description)
        self.max_age = max_age

    def challenge_parameters(self) -> list[tuple[str, str]]:
        return [("max_age", str(self.max_age))] if self.max_age is not None else []


class VerifierUnavailable(ResourceError):
    """pyauth (its discovery document, JWKS or introspection endpoint) could not be reached or answered
    nonsense: the token may well be good, so this is a 503 the client may retry, never a 401."""

    status_code = 503
    retry_after: ClassVar[int] = 5

    def headers(self, realm: str | None = None) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after)}
