"""The rules a registered redirect URI (or post-logout redirect URI) must meet: OAuth 2.1 §2.3.1 and
RFC 9700 §2.1 and §4.1.

URIs are later compared exactly (no pattern, no prefix), so what is registered must be one precise
address: absolute, `https` (or plain `http` only on a loopback host, for native apps and development,
RFC 8252 §7.3), without a fragment (RFC 6749 §3.1.2), without user:password, without wildcards.
"""

from urllib.parse import urlsplit

from app.core.config import is_loopback_url
from app.core.errors import PyauthError

MAX_REDIRECT_URI_LENGTH = 2000
MAX_REDIRECT_URIS = 20


class InvalidRedirectUri(PyauthError):
    status_code = 422
    code = "invalid_redirect_uri"  # RFC 7591 §3.2.2
    message = "A redirect URI is not acceptable."


def redirect_uri_problem(uri: str) -> str | None:  # noqa: PLR0911 - one return per rule
    """Why `uri` cannot be registered, or None if it can."""
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        return f"longer than {MAX_REDIRECT_URI_LENGTH} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return "contains whitespace or a control character"
    if "#" in uri:
        return "has a fragment (RFC 6749 §3.1.2)"
    if "*" in uri:
        return "has a wildcard: redirect URIs are matched exactly"
    try:
        parts = urlsplit(uri)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        return "is not a valid URI"
    if not parts.scheme or not parts.netloc or not parts.hostname:
        return "is not an absolute URI with a host"
    if "@" in parts.netloc:
        return "holds a user name or password"
    scheme = parts.scheme.lower()
    if scheme == "http":
        if not is_loopback_url(uri):
            return "uses http on a host that is not loopback: use https"
    elif scheme != "https":
        return "must use https (or http on a loopback host)"
    return None


def checked_redirect_uris(uris: list[str], field: str) -> list[str]:
    """`uris` without duplicates, in order; raises `InvalidRedirectUri` naming the first bad one."""
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"{field}: at most {MAX_REDIRECT_URIS} URIs.")
    for index, uri in enumerate(uris):
        if problem := redirect_uri_problem(uri):
            raise InvalidRedirectUri(f"{field}[{index}] {problem}.")
    return list(dict.fromkeys(uris))
