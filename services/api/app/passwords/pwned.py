"""Have I Been Pwned's Pwned Passwords range API, by k-anonymity (off unless `HIBP_ENABLED`).

Only the first 5 hex digits of the password's SHA-1 leave pyauth (`GET {HIBP_API_URL}/range/{prefix}`);
the service answers with every known suffix under that prefix and its count, and the comparison happens
here. `Add-Padding: true` makes every answer a similar size, so its length does not tell an observer the
prefix; padding lines have a count of 0. The check fails open: a timeout, a connection error or an answer
that is not a range list skips it with one warning in the log, since refusing every new password while a
third party is down would lock users out of registering and resetting. The log line names neither the
password nor any part of its hash.
"""

import asyncio
import hashlib
import logging
import ssl
from functools import cache

from app.core.config import Settings

log = logging.getLogger("pyauth.passwords")

# A padded answer is about 800 to 1,000 lines of 40 bytes; anything far larger is not a range answer.
_MAX_RESPONSE_BYTES = 256 * 1024


class RangeAnswerInvalid(Exception):
    """The range API answered something that is not a list of `SUFFIX:COUNT` lines."""


async def times_pwned(password: str, settings: Settings) -> int | None:
    """How often the password appears in breaches (0: never), or None when the check could not run."""
    # SHA-1 is the range API's scheme, not a protection of the password: only 20 bits of it are sent.
    # httpx is imported where a check runs: importing it loads its command-line client (rich, click), which
    # the CLIs that check new passwords with the check off should not pay for at every start.
    import httpx  # noqa: PLC0415

    digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    try:
        async with asyncio.timeout(settings.HIBP_TIMEOUT_SECONDS):
            body = await _fetch_range(settings, prefix)
        return _count_of(suffix, body)
    except (TimeoutError, httpx.HTTPError, RangeAnswerInvalid) as exc:
        log.warning(
            "breached-password check skipped, password accepted without it (fail open): %s from %s",
            type(exc).__name__,
            settings.HIBP_API_URL,
        )
        return None


async def _fetch_range(settings: Settings, prefix: str) -> bytes:
    import httpx  # noqa: PLC0415  (see times_pwned)

    url = f"{settings.HIBP_API_URL.rstrip('/')}/range/{prefix}"
    headers = {"Add-Padding": "true", "User-Agent": f"{settings.SERVICE_NAME} (pyauth)"}
    async with (
        httpx.AsyncClient(verify=_tls_context(), timeout=settings.HIBP_TIMEOUT_SECONDS) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _MAX_RESPONSE_BYTES:
                raise RangeAnswerInvalid("answer too large")
        return bytes(body)


def _count_of(suffix: str, body: bytes) -> int:
    try:
        lines = body.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise RangeAnswerInvalid("not ASCII") from None
    for line in lines:
        if not line.strip():
            continue
        found, separator, count = line.strip().partition(":")
        if not separator or not count.isdigit():
            raise RangeAnswerInvalid("not a SUFFIX:COUNT line")
        if found.upper() == suffix:
            return int(count)
    return 0


@cache
def _tls_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle for every check would cost more than the request.
    import httpx  # noqa: PLC0415  (see times_pwned)

    return httpx.create_ssl_context()
