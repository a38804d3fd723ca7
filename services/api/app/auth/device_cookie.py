"""How a password login's device token travels in a browser: a cookie scoped to the token endpoint, so
no other request carries it. Clients without cookies send it as the `device_token` form field."""

from ipaddress import ip_address
from urllib.parse import urlsplit

from fastapi import Response

from app.core.config import Settings

DEVICE_COOKIE = "pyauth_device"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a secret


def set_device_cookie(response: Response, token: str, settings: Settings) -> None:
    base = urlsplit(settings.PUBLIC_BASE_URL)
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=settings.DEVICE_TOKEN_TTL_SECONDS,
        path=base.path.rstrip("/") + TOKEN_PATH,
        secure=not is_plain_http_loopback(base.scheme, base.hostname),
        httponly=True,
        samesite="strict",
    )


def is_plain_http_loopback(scheme: str, host: str | None) -> bool:
    """A browser keeps no Secure cookie from http://localhost in every version: there, and only there, the
    cookie goes without the Secure attribute."""
    if scheme != "http" or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
