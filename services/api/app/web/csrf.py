"""CSRF protection of the hosted pages' forms: a signed double-submit token (OWASP CSRF cheat sheet).

A GET of a page gives the browser a random pre-session cookie (`__Host-pyauth_csrf`, HttpOnly, SameSite=Lax)
if it has none, and puts HMAC-SHA256(key, cookie) in the form. A POST is accepted only when the form's
token is the HMAC of the cookie it came with, compared in constant time. Nothing is stored on the server,
so the sign-in form works before any session exists (login CSRF is covered too). The HMAC key is derived
from KEY_ENCRYPTION_KEY: someone who can set a cookie for this host (a sibling subdomain, where the
`__Host-` prefix is not available) still cannot make the matching form token. The cookie is replaced at
sign-in and sign-out, so a token from before either no longer works.
"""

import base64
import hashlib
import hmac
import secrets

from app.core.config import Settings
from app.core.errors import PyauthError
from app.core.templating import N_

MAX_COOKIE_LENGTH = 64
_CONTEXT = b"pyauth hosted pages csrf v1"


class CsrfRefused(PyauthError):
    status_code = 400
    code = "csrf_refused"
    message = N_(
        "The form has expired or did not come from this site. Go back, reload the page and try again."
    )


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _key(settings: Settings) -> bytes:
    master = settings.KEY_ENCRYPTION_KEY.get_secret_value().encode()
    return hmac.new(master, _CONTEXT, hashlib.sha256).digest()


def form_token(secret: str, settings: Settings) -> str:
    mac = hmac.new(_key(settings), secret.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def usable_secret(secret: str | None) -> str | None:
    """The cookie's value if it can be one of ours, else None (then a new one is issued)."""
    if secret and 16 <= len(secret) <= MAX_COOKIE_LENGTH:
        return secret
    return None


def check(secret: str | None, token: str | None, settings: Settings) -> None:
    """Refuse (400) a form whose token is missing or is not the HMAC of the cookie sent with it."""
    secret = usable_secret(secret)
    if secret is None or not token:
        raise CsrfRefused()
    if not hmac.compare_digest(form_token(secret, settings).encode(), token.encode("utf-8", "replace")):
        raise CsrfRefused()
