"""Which client origin a sign-in page's form may end up at, when the page returns to an authorization
request.

The hosted pages' CSP says `form-action 'self'`, and Chromium applies form-action to every redirect that
follows a form's POST: `POST /signin` → 303 `/oauth2/authorize` → 302 to the client would be blocked at the
last hop. The sign-in page that returns to an authorization request therefore also allows the origin of
that request's redirect URI, and only when the client is known and registered that exact URI (the same
check as the authorization endpoint's), so no page ever widens its policy for an unregistered origin.
"""

import re
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.oidc.authorize import AuthorizeRefused, checked_client
from app.oidc.discovery import AUTHORIZE_PATH

# scheme://host[:port] of an http(s) URI; nothing that could end or extend a CSP directive.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


async def client_origin(db: AsyncSession, return_to: str) -> str | None:
    """The origin of the registered redirect URI of the authorization request `return_to`, if it is one."""
    parts = urlsplit(return_to)
    if parts.path != AUTHORIZE_PATH:
        return None
    try:
        _, redirect_uri = await checked_client(db, dict(parse_qsl(parts.query)))
    except AuthorizeRefused:
        return None
    return origin_of(redirect_uri)


def origin_of(uri: str) -> str | None:
    """scheme://host[:port] of a registered URI, when it is safe to name in a CSP directive."""
    parts = urlsplit(uri)
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if _ORIGIN.fullmatch(origin) else None
