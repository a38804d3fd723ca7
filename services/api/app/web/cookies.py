"""The hosted pages' cookies: the browser SSO session, the CSRF pre-session secret, and the device token
of a sign-in.

Over https they carry the `__Host-` prefix (the browser then insists on Secure, Path=/ and no Domain, so
neither a sibling subdomain nor a plain-http page can set or overwrite them). On plain http to a loopback
host (local development, where a browser would drop a Secure cookie) the prefix is impossible, since it
requires Secure: there, and only there, the same cookies go without prefix and without Secure
(`pyauth_sso`, `pyauth_csrf`), as the device cookie decides (`app.auth.device_cookie`). Production refuses
a non-https PUBLIC_BASE_URL, so it always uses the prefixed names.
"""

from urllib.parse import urlsplit

from fastapi import Request, Response

from app.auth.device_cookie import DEVICE_COOKIE, is_plain_http_loopback
from app.core.config import Settings

SSO_NAME = "pyauth_sso"
CSRF_NAME = "pyauth_csrf"
SECURE_PREFIX = "__Host-"
SIGNIN_PATH = "/signin"


def _insecure(settings: Settings) -> bool:
    base = urlsplit(settings.PUBLIC_BASE_URL)
    return is_plain_http_loopback(base.scheme, base.hostname)


def cookie_name(name: str, settings: Settings) -> str:
    return name if _insecure(settings) else SECURE_PREFIX + name


def read(request: Request, name: str, settings: Settings) -> str | None:
    return request.cookies.get(cookie_name(name, settings))


def set_host_cookie(
    response: Response, name: str, value: str, settings: Settings, *, max_age: int | None
) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (sent on a top-level navigation from a client app, as
    the authorization redirect is, never on a cross-site POST), Path=/."""
    response.set_cookie(
        cookie_name(name, settings),
        value,
        max_age=max_age,
        path="/",
        secure=not _insecure(settings),
        httponly=True,
        samesite="lax",
    )


def clear(response: Response, name: str, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(name, settings), path="/", secure=not _insecure(settings), httponly=True, samesite="lax"
    )


def set_sso_cookie(response: Response, token: str, settings: Settings) -> None:
    set_host_cookie(response, SSO_NAME, token, settings, max_age=settings.SSO_SESSION_ABSOLUTE_TTL_SECONDS)


def set_csrf_cookie(response: Response, secret: str, settings: Settings) -> None:
    # A browser-session cookie: a new one costs nothing, and the page asks for it on every GET.
    set_host_cookie(response, CSRF_NAME, secret, settings, max_age=None)


def set_signin_device_cookie(response: Response, token: str, settings: Settings) -> None:
    """The device token of a sign-in on the page, scoped to the sign-in path as the API's is to the token
    endpoint: the same token, the same counters; only the sign-in form's POST carries it back."""
    base = urlsplit(settings.PUBLIC_BASE_URL)
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=settings.DEVICE_TOKEN_TTL_SECONDS,
        path=base.path.rstrip("/") + SIGNIN_PATH,
        secure=not _insecure(settings),
        httponly=True,
        samesite="strict",
    )
