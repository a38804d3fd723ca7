"""RFC 6749 §3.1 and §3.2: "Request and response parameters MUST NOT be included more than once." The
token, revocation and introspection endpoints and the authorization endpoint refuse a request that names
a parameter twice (`invalid_request`) instead of picking one of its values: which one a server would pick
is exactly what an attacker who can append to a request hopes to choose."""

from collections.abc import Iterable

from app.core.errors import OAuthError


def repeated_names(items: Iterable[tuple[str, object]]) -> list[str]:
    """The parameter names that occur more than once, in the order they first repeat."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name, _value in items:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def repeated_parameter_message(names: list[str]) -> str:
    listed = ", ".join(names)
    return f"A parameter may be given once only (RFC 6749 §3.1): {listed} more than once."


def refuse_repeated(items: Iterable[tuple[str, object]]) -> None:
    """`OAuthError` (400 invalid_request) if the request's parameters (a form's `multi_items()`) name one
    twice."""
    names = repeated_names(items)
    if names:
        raise OAuthError(repeated_parameter_message(names))
