"""Where a hosted page sends the browser once it is done (`return_to`): a path on this server, never
anywhere else (no open redirect, CWE-601; RFC 9700 §4.11).

A later `/oauth2/authorize` sends the browser to `/signin?return_to=/oauth2/authorize?...`; the value is
then a path with a query. Anything that a browser, or a proxy that decodes once more, could read as
another host is refused: `//host`, `/\\host`, a scheme, a backslash or control character anywhere, and the
same after one more percent-decoding (`/%2F%2Fhost`, `/%5Chost`).
"""

import re
from urllib.parse import unquote, urlsplit

from app.core.errors import PyauthError
from app.core.templating import N_

MAX_LENGTH = 2048
DEFAULT = "/account"
# Printable ASCII without the backslash: a browser reads `\` as `/` in a URL's path.
_ALLOWED = re.compile(r"[!-\[\]-~]*")


class ReturnToRefused(PyauthError):
    status_code = 400
    code = "invalid_return_to"
    message = N_("The page to return to is not on this server.")


def _is_local_path(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def checked(value: str | None) -> str:
    """`value` if it is a safe local path, DEFAULT when it is absent; else `ReturnToRefused`. Decoded
    once more, only its path must still be local and clean: its query may hold an encoded URL (the
    authorization request's `redirect_uri`), which is the authorization endpoint's to check."""
    if value is None or value == "":
        return DEFAULT
    if len(value) > MAX_LENGTH or not _ALLOWED.fullmatch(value) or not _is_local_path(value):
        raise ReturnToRefused()
    decoded_path = unquote(urlsplit(value).path)
    if not _is_local_path(decoded_path) or not _ALLOWED.fullmatch(decoded_path.replace(" ", "")):
        raise ReturnToRefused()
    return value
