"""Which scopes a token request is granted (RFC 6749 §3.3): what it asks for, if it asks, out of what it
may have; nothing asked for: all it may have. Asking for one it may not have is `invalid_scope` (§5.2),
never a silent narrowing, so a client learns of its misconfiguration at once."""

from collections.abc import Sequence
from typing import Final

from app.auth.errors import InvalidScope

# The OpenID Connect scopes: they are about a user (OIDC Core §5.4), so a client's own token
# (client_credentials) never carries them.
USER_SCOPES: Final = ("openid", "profile", "email")


def requested_scopes(scope: str | None) -> tuple[str, ...] | None:
    """The scope parameter's tokens, in order, without repeats; None when it was not sent."""
    if scope is None or not scope.strip():
        return None
    return tuple(dict.fromkeys(scope.split()))


def granted_scopes(scope: str | None, allowed: Sequence[str]) -> tuple[str, ...]:
    """The scopes granted for a request's `scope` parameter, out of `allowed`."""
    requested = requested_scopes(scope)
    if requested is None:
        return tuple(allowed)
    if refused := [name for name in requested if name not in allowed]:
        raise InvalidScope(f"Scope not allowed: {' '.join(refused)[:200]}.")
    return requested
