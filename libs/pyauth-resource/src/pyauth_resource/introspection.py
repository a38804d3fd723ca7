"""The client side of OAuth 2.0 Token Introspection (RFC 7662), for routes that must see a revocation at
once rather than when the token expires.

The resource server authenticates to the introspection endpoint as a confidential client
(`client_secret_basic` by default, RFC 6749 §2.3.1) and posts the token. Answers are cached for a few
seconds (never past the token's expiry), keyed by a SHA-256 of the token so that no token sits in memory
as a key; a revocation is therefore seen within `cache_ttl` seconds.
"""

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote_plus

import httpx

from pyauth_resource.errors import InvalidToken, VerifierUnavailable
from pyauth_resource.fetches import FetchCounter
from pyauth_resource.keys import MAX_DOCUMENT_BYTES

log = logging.getLogger("pyauth_resource")

DEFAULT_CACHE_TTL: Final = 5.0
DEFAULT_MAX_ENTRIES: Final = 10_000


@dataclass(frozen=True, slots=True)
class Introspection:
    """How to reach the introspection endpoint. `endpoint` None: the discovery document's
    `introspection_endpoint`."""

    client_id: str
    client_secret: str
    endpoint: str | None = None
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    cache_ttl: float = DEFAULT_CACHE_TTL
    max_entries: int = DEFAULT_MAX_ENTRIES

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"Introspection(client_id={self.client_id!r}, endpoint={self.endpoint!r})"


@dataclass(frozen=True, slots=True)
class _Cached:
    until: float
    response: Mapping[str, Any] | None  # None: inactive


class IntrospectionClient:
    """Asks the introspection endpoint whether a token is active, with a short cache."""

    def __init__(
        self,
        options: Introspection,
        http: httpx.AsyncClient,
        endpoint: Callable[[], Awaitable[str | None]],
        clock: Callable[[], float],
        fetches: FetchCounter | None = None,
    ) -> None:
        self._options = options
        self._fetches = fetches or FetchCounter()
        self._http = http
        self._endpoint = endpoint
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Future[Mapping[str, Any] | None]] = {}

    async def active(self, token: str, *, expires_at: float | None = None) -> Mapping[str, Any]:
        """The endpoint's answer for an active token; `InvalidToken` if it says the token is not
        active, `VerifierUnavailable` if it cannot be asked."""
        key = hashlib.sha256(token.encode()).hexdigest()
        while True:
            now = self._clock()
            cached = self._cache.get(key)
            if cached is not None and now < cached.until:
                response = cached.response
                break
            pending = self._inflight.get(key)
            if pending is None:
                response = await self._ask_once(key, token, now, expires_at)
                break
            # Concurrent checks of one token share one request: wait for it without being cancelled by it.
            await asyncio.wait([pending])
            if pending.cancelled():
                continue  # its caller went away before an answer: ask again
            if (error := pending.exception()) is not None:
                raise VerifierUnavailable(getattr(error, "description", "introspection failed"))
            response = pending.result()
            break
        if response is None:
            raise InvalidToken()
        return response

    async def _ask_once(
        self, key: str, token: str, now: float, expires_at: float | None
    ) -> Mapping[str, Any] | None:
        future: asyncio.Future[Mapping[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await self._ask(token)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._inflight[key]
        until = now + self._options.cache_ttl
        if expires_at is not None:
            until = min(until, expires_at)
        self._remember(key, _Cached(until, response), now)
        future.set_result(response)
        return response

    def _remember(self, key: str, entry: _Cached, now: float) -> None:
        if len(self._cache) >= self._options.max_entries:
            self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            while len(self._cache) >= self._options.max_entries:  # still full: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[key] = entry

    async def _ask(self, token: str) -> Mapping[str, Any] | None:
        endpoint = self._options.endpoint or await self._endpoint()
        if endpoint is None:
            raise VerifierUnavailable("pyauth publishes no introspection endpoint")
        form = {"token": token, "token_type_hint": "access_token"}
        headers = {"Accept": "application/json"}
        if self._options.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts form-encoded before they are joined and base64-encoded.
            credentials = f"{quote_plus(self._options.client_id)}:{quote_plus(self._options.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        else:
            form |= {"client_id": self._options.client_id, "client_secret": self._options.client_secret}
        self._fetches.add("introspection")
        try:
            response = await self._http.post(endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise VerifierUnavailable(f"introspection failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            # 401 means this resource server's credentials are wrong: a configuration error, not the token's.
            log.error("introspection endpoint answered HTTP %d", response.status_code)
            raise VerifierUnavailable(f"introspection answered HTTP {response.status_code}")
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise VerifierUnavailable("introspection answer too large")
        try:
            body = response.json()
        except ValueError:
            raise VerifierUnavailable("introspection answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise VerifierUnavailable("introspection answer has no boolean `active`")
        # RFC 7662 §2.2: anything but `active: true` means the token must not be accepted.
        return body if body["active"] is True else None
