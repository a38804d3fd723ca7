"""pyauth's published metadata and keys, fetched over HTTP and cached in memory.

The discovery document (`/.well-known/openid-configuration`) is read once and names the JWKS. The key set
is kept until it is `max_age` old, so verifying a token makes no network call while its key is cached.
A token naming an unknown `kid` (a rotation) triggers a refresh, but refreshes of any cause are at most
one per `refresh_interval` (10 s by default, as pyauth's own key ring), and concurrent callers share one
fetch: a flood of made-up key ids costs pyauth one JWKS request per interval, not one per token. A token
signed with a key rotated in less than that after the last fetch is refused until the interval has passed.
"""

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt

from pyauth_resource.errors import VerifierUnavailable
from pyauth_resource.fetches import FetchCounter

log = logging.getLogger("pyauth_resource")

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
# Asymmetric algorithms only: a symmetric (`oct`) key in a JWKS would let anyone holding the published
# key sign tokens, so HS* and `none` can never be configured.
SUPPORTED_ALGORITHMS: Final = frozenset(
    {"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
MAX_DOCUMENT_BYTES: Final = 256 * 1024
MAX_KEYS: Final = 64
# After a failed fetch, the next attempt comes sooner than a refresh interval: a pyauth that was
# restarting must not leave the resource server answering 503 for long.
FAILED_FETCH_RETRY_SECONDS: Final = 5.0


def check_url(url: str, *, allow_insecure_http: bool) -> None:
    """https, or http to a loopback address (a development stack), or any http if allowed: keys fetched
    over plain http from elsewhere could be swapped on the way."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if allow_insecure_http or parts.hostname == "localhost":
        return
    try:
        if ipaddress.ip_address(parts.hostname).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"{url!r} is plain http to a non-loopback host: use https, or allow_insecure_http=True")


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What this library reads from the discovery document."""

    issuer: str
    jwks_uri: str
    introspection_endpoint: str | None


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key of the JWKS and the one algorithm it verifies (from the key, never from a token)."""

    kid: str
    algorithm: str
    key: Any


async def _get_json(
    http: httpx.AsyncClient, url: str, what: str, counted: Callable[[], None]
) -> Mapping[str, Any]:
    """GET a JSON object; `counted` is called for every request sent (each attempt)."""
    for attempt in (1, 2):
        counted()
        try:
            response = await http.get(url, headers={"Accept": "application/json"})
            break
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            # Once more on a fresh connection: a kept-alive one may have been closed by the server
            # just as it was reused. A GET is safe to repeat.
            if attempt == 2:
                raise VerifierUnavailable(f"{what} could not be fetched: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise VerifierUnavailable(f"{what} could not be fetched: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise VerifierUnavailable(f"{what} answered HTTP {response.status_code}")
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise VerifierUnavailable(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = response.json()
    except ValueError:
        raise VerifierUnavailable(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise VerifierUnavailable(f"{what} is not a JSON object")
    return document


def parse_metadata(
    document: Mapping[str, Any], issuer: str, *, allow_insecure_http: bool
) -> ProviderMetadata:
    # OpenID Connect Discovery §4.3: the document's issuer must be exactly the one configured.
    if document.get("issuer") != issuer:
        raise VerifierUnavailable("the discovery document names another issuer")
    jwks_uri = document.get("jwks_uri")
    introspection = document.get("introspection_endpoint")
    try:
        if not isinstance(jwks_uri, str):
            raise ValueError("jwks_uri is missing")
        check_url(jwks_uri, allow_insecure_http=allow_insecure_http)
        if introspection is not None:
            if not isinstance(introspection, str):
                raise ValueError("introspection_endpoint is not a string")
            check_url(introspection, allow_insecure_http=allow_insecure_http)
    except ValueError as exc:
        raise VerifierUnavailable(f"the discovery document is unusable: {exc}") from None
    return ProviderMetadata(issuer=issuer, jwks_uri=jwks_uri, introspection_endpoint=introspection)


def parse_jwks(document: Mapping[str, Any], algorithms: Collection[str]) -> dict[str, VerificationKey]:
    """The usable signature keys of a JWKS, by kid. Keys that are not for signatures, symmetric, of an
    algorithm not allowed, without a kid, malformed, or sharing a kid are left out (and logged)."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise VerifierUnavailable("the JWKS has no key list")
    keys: dict[str, VerificationKey] = {}
    duplicates: set[str] = set()
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if (
            not isinstance(kid, str)
            or not kid
            or entry.get("use", "sig") != "sig"
            or entry.get("kty") == "oct"
        ):
            continue
        try:
            parsed = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.warning("JWKS key %.64r left out: %s", kid, type(exc).__name__)
            continue
        if parsed.algorithm_name not in algorithms:
            log.warning("JWKS key %.64r left out: algorithm %.16s not allowed", kid, parsed.algorithm_name)
            continue
        if kid in keys:
            duplicates.add(kid)
        keys[kid] = VerificationKey(kid=kid, algorithm=parsed.algorithm_name, key=parsed.key)
    for kid in duplicates:  # which of the two would be meant is unknowable: neither is used
        log.warning("JWKS key id %.64r appears twice: left out", kid)
        del keys[kid]
    return keys


class KeySet:
    """The issuer's metadata and verification keys, cached. One per verifier; use it from one event loop."""

    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        algorithms: Collection[str],
        clock: Callable[[], float],
        refresh_interval: float,
        max_age: float,
        allow_insecure_http: bool,
        fetches: FetchCounter | None = None,
    ) -> None:
        self._issuer = issuer
        self._fetches = fetches or FetchCounter()
        self._http = http
        self._algorithms = frozenset(algorithms)
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._allow_insecure_http = allow_insecure_http
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str, VerificationKey] | None = None
        self._fetched_at: float | None = None  # the last successful JWKS fetch
        self._attempted_at: float | None = None  # the last fetch of any cause, successful or not
        self._attempt_succeeded = False
        self._lock = asyncio.Lock()

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            async with self._lock:
                if self._metadata is None:
                    self._metadata = await self._fetch_metadata()
        return self._metadata

    async def key_for(self, kid: str) -> VerificationKey | None:
        """The key named `kid`, or None. Fetches the JWKS only when none is cached, when the cached one
        is `max_age` old, or when `kid` is unknown, and then at most once per refresh interval."""
        if self._keys is None or self._is_stale():
            await self._refresh(lambda: self._keys is None or self._is_stale())
        if self._keys is not None and kid not in self._keys:
            await self._refresh(lambda: self._keys is None or kid not in self._keys)
        if self._keys is None:
            raise VerifierUnavailable("pyauth's keys could not be fetched yet")
        return self._keys.get(kid)

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._elapsed(self._fetched_at) >= self._max_age

    def _elapsed(self, since: float) -> float:
        now = self._clock()
        # A wall clock set back must not hold refreshes off until it catches up again.
        return now - since if now >= since else float("inf")

    def _may_fetch(self) -> bool:
        if self._attempted_at is None:
            return True
        wait = self._refresh_interval if self._attempt_succeeded else FAILED_FETCH_RETRY_SECONDS
        return self._elapsed(self._attempted_at) >= wait

    async def _refresh(self, still_needed: Callable[[], bool]) -> None:
        # While a fetch is in flight, wait for it (it may bring the key) rather than give up at once.
        if not self._lock.locked() and not self._may_fetch():
            return
        async with self._lock:
            # Callers that waited here find the fetch done by the one before them, and skip theirs.
            if not self._may_fetch() or not still_needed():
                return
            now = self._clock()
            self._attempted_at, self._attempt_succeeded = now, False
            try:
                keys = await self._fetch_keys()
            except VerifierUnavailable as exc:
                # Cached keys stay in use: a pyauth that is briefly down does not fail every request.
                log.warning("JWKS refresh failed: %s", exc.description)
                return
            self._keys, self._fetched_at, self._attempt_succeeded = keys, now, True

    async def _fetch_metadata(self) -> ProviderMetadata:
        document = await _get_json(
            self._http,
            self._issuer + DISCOVERY_PATH,
            "the discovery document",
            lambda: self._fetches.add("discovery"),
        )
        return parse_metadata(document, self._issuer, allow_insecure_http=self._allow_insecure_http)

    async def _fetch_keys(self) -> dict[str, VerificationKey]:
        if self._metadata is None:
            self._metadata = await self._fetch_metadata()
        try:
            document = await _get_json(
                self._http, self._metadata.jwks_uri, "the JWKS", lambda: self._fetches.add("jwks")
            )
        except VerifierUnavailable:
            self._metadata = None  # the JWKS may have moved: read discovery again next time
            raise
        return parse_jwks(document, self._algorithms)
