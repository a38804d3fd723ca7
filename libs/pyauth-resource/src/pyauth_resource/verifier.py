"""The framework-neutral verifier: from an Authorization header (or a bare token) to typed claims, or to an
error that carries its HTTP status and RFC 6750 challenge.

Checks, following RFC 8725 and RFC 9068: the token's size; no `jku`/`x5u`/`jwk`/`x5c`/`crit` header (a
token never chooses its own key); `typ` is `at+jwt`; the key named by `kid` comes from pyauth's JWKS and
fixes the algorithm (a token naming `none`, HS256 or any other algorithm is refused); the signature; `iss`
is the configured issuer and `aud` holds the configured audience; `exp`, `nbf` and `iat` against the
clock with a small leeway; the required claims are present and of the right types.
"""

import json
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Final

import httpx
import jwt
from jwt.utils import base64url_decode

from pyauth_resource.claims import AccessTokenClaims, MalformedClaim, Requirement, claims_from_payload
from pyauth_resource.errors import InvalidRequest, InvalidToken, MissingToken
from pyauth_resource.fetches import FetchCounter, Fetches
from pyauth_resource.introspection import Introspection, IntrospectionClient
from pyauth_resource.keys import SUPPORTED_ALGORITHMS, KeySet, check_url

log = logging.getLogger("pyauth_resource")

ACCESS_TOKEN_TYPES: Final = ("at+jwt", "application/at+jwt")
DEFAULT_ALGORITHMS: Final = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256")
# RFC 9068 §2.2's required claims; pyauth's access tokens carry every one.
DEFAULT_REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "exp", "iat", "jti", "client_id")
FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64"})
MAX_TOKEN_LENGTH: Final = 8192
MAX_HEADER_LENGTH: Final = 1024
# RFC 6750 §2.1: `Bearer 1*SP b64token`.
_BEARER_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _header_of(token: str) -> dict[str, Any]:
    """The JOSE header, read from the first segment alone: `jwt.get_unverified_header` decodes and checks all
    three segments, which `jwt.decode` does again right after (with the signature), so reading the header
    that way cost a fifth of a verification. Nothing read here is trusted before `jwt.decode` verifies the
    signature over these same bytes."""
    header = json.loads(base64url_decode(token.split(".", 1)[0]))
    if not isinstance(header, dict):
        raise _Refused("the header is not a JSON object")
    return header


class _Refused(Exception):
    """Why a token was refused: logged at DEBUG, never sent to the client."""


def bearer_token(authorization: str | Sequence[str] | None) -> str:
    """The token of an `Authorization: Bearer …` header (RFC 6750 §2.1); pass every value the request
    carried. `MissingToken` (401) if there is no bearer token, `InvalidRequest` (400) if it is malformed."""
    values = [authorization] if isinstance(authorization, str) else list(authorization or ())
    if len(values) > 1:
        raise InvalidRequest("The request carries more than one Authorization header.")
    if not values:
        raise MissingToken()
    scheme, _, rest = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken()  # another scheme: the bearer challenge tells the client what is expected
    token = rest.strip(" ")
    if _BEARER_TOKEN.fullmatch(token) is None:
        raise InvalidRequest("The Authorization header is not `Bearer <token>`.")
    return token


def authorization_values(scope: dict[str, Any]) -> list[str]:
    """Every Authorization header of a raw ASGI request scope, for `authenticate()` in any ASGI app."""
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    return [value.decode("latin-1") for name, value in headers if name.lower() == b"authorization"]


class AccessTokenVerifier:
    """Verifies pyauth's access tokens. Create one per app (it holds the key cache and an HTTP client)
    and close it when the app stops (`await verifier.aclose()`, or `async with`).

    `issuer`: pyauth's issuer URL, exactly as its discovery document says it (no trailing slash).
    `audience`: the audience this resource server accepts (pyauth's JWT_AUDIENCE; one, or several).
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str | Collection[str],
        leeway: float = 30.0,
        check_type: bool = True,
        token_types: Collection[str] = ACCESS_TOKEN_TYPES,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        required_claims: Collection[str] = DEFAULT_REQUIRED_CLAIMS,
        jwks_refresh_interval: float = 10.0,
        jwks_max_age: float = 300.0,
        introspection: Introspection | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_url(issuer, allow_insecure_http=allow_insecure_http)
        if issuer.endswith("/"):
            raise ValueError("issuer: no trailing slash (it must equal the `iss` claim exactly)")
        if unsupported := set(algorithms) - SUPPORTED_ALGORITHMS:
            raise ValueError(f"algorithms not allowed (asymmetric ones only): {sorted(unsupported)}")
        if not algorithms:
            raise ValueError("algorithms: at least one")
        self.issuer = issuer
        self.audience = [audience] if isinstance(audience, str) else list(audience)
        if not self.audience:
            raise ValueError("audience: at least one")
        self.leeway = leeway
        self.check_type = check_type
        self.token_types = frozenset(value.lower() for value in token_types)
        self.algorithms = frozenset(algorithms)
        # `exp` always: a token that never expires is never an access token.
        self.required_claims = list(dict.fromkeys(["exp", *required_claims]))
        self._clock = clock
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._fetches = FetchCounter()
        self.keys = KeySet(
            issuer,
            self._http,
            algorithms=algorithms,
            clock=clock,
            refresh_interval=jwks_refresh_interval,
            max_age=jwks_max_age,
            allow_insecure_http=allow_insecure_http,
            fetches=self._fetches,
        )
        self._introspection = (
            IntrospectionClient(introspection, self._http, self._introspection_endpoint, clock, self._fetches)
            if introspection is not None
            else None
        )
        if introspection is not None and introspection.endpoint is not None:
            check_url(introspection.endpoint, allow_insecure_http=allow_insecure_http)

    @property
    def fetches(self) -> Fetches:
        """The HTTP requests this verifier has sent to pyauth so far (discovery, JWKS, introspection).
        Verifying with cached keys sends none: `verifier.fetches - before` around a loop shows it."""
        return self._fetches.snapshot()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AccessTokenVerifier":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def authenticate(
        self,
        authorization: str | Sequence[str] | None,
        requirement: Requirement | None = None,
        *,
        introspect: bool = False,
    ) -> AccessTokenClaims:
        """Claims of the request's bearer token, after `requirement` is checked. Raises a `BearerError`
        (400/401/403 with its challenge) or `VerifierUnavailable` (503)."""
        claims = await self.verify(bearer_token(authorization), introspect=introspect)
        if requirement is not None:
            requirement.check(claims, self._clock)
        return claims

    async def verify(self, token: str, *, introspect: bool = False) -> AccessTokenClaims:
        """The claims of a valid access token; `InvalidToken` otherwise. With `introspect`, the
        introspection endpoint must also say the token is active (after the local checks pass, so a
        forged token never reaches it)."""
        try:
            claims = await self._verify(token)
        except _Refused as refused:
            log.debug("access token refused: %s", refused)
            raise InvalidToken() from None
        except (jwt.PyJWTError, MalformedClaim, ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Whatever a hostile token makes the parser raise is a refusal, never a 500.
            log.debug("access token refused: %s: %s", type(exc).__name__, exc)
            raise InvalidToken() from None
        if introspect:
            await self._check_active(token, claims)
        return claims

    async def _check_active(self, token: str, claims: AccessTokenClaims) -> None:
        if self._introspection is None:
            raise RuntimeError("introspect=True needs the verifier's `introspection` option")
        answer = await self._introspection.active(token, expires_at=claims.exp)
        # RFC 7662 §4: an active answer about another subject or issuer is not an answer about this token.
        if answer.get("sub", claims.sub) != claims.sub or answer.get("iss", claims.issuer) != claims.issuer:
            log.warning("introspection answered about another token: refused")
            raise InvalidToken()

    async def _introspection_endpoint(self) -> str | None:
        return (await self.keys.metadata()).introspection_endpoint

    async def _verify(self, token: str) -> AccessTokenClaims:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise _Refused("not a string of acceptable length")
        if token.count(".") != 2 or len(token.split(".", 1)[0]) > MAX_HEADER_LENGTH:
            raise _Refused("not a compact JWS with a header of acceptable length")
        header = _header_of(token)
        if forbidden := FORBIDDEN_HEADERS & header.keys():
            raise _Refused(f"forbidden header(s) {sorted(forbidden)}")
        typ = header.get("typ")
        if self.check_type and (not isinstance(typ, str) or typ.lower() not in self.token_types):
            raise _Refused("typ is not at+jwt")
        alg, kid = header.get("alg"), header.get("kid")
        # Refused before any key lookup, so that such tokens never make the key set refresh.
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _Refused(f"alg {str(alg)[:16]!r} is not an allowed algorithm")
        if not isinstance(kid, str) or not 0 < len(kid) <= 128:
            raise _Refused("no usable kid")
        key = await self.keys.key_for(kid)
        if key is None:
            raise _Refused(f"unknown kid {kid[:64]!r}")
        # The key fixes the algorithm: a token cannot pick another one (or another curve) by naming it.
        if alg != key.algorithm:
            raise _Refused(f"alg {alg!r} is not the algorithm of key {kid[:64]!r}")
        payload = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm],
            audience=self.audience,
            issuer=self.issuer,
            # Times are checked below against the injected clock, not PyJWT's system clock.
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": self.required_claims,
            },
        )
        self._check_times(payload)
        return claims_from_payload(MappingProxyType(payload))

    def _check_times(self, payload: dict[str, Any]) -> None:
        now = self._clock()
        for name in ("exp", "nbf", "iat"):
            value = payload.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise _Refused(f"{name} is not a NumericDate")
        if (exp := payload.get("exp")) is not None and exp <= now - self.leeway:
            raise _Refused("expired")
        if (nbf := payload.get("nbf")) is not None and nbf > now + self.leeway:
            raise _Refused("not yet valid (nbf)")
        if (iat := payload.get("iat")) is not None and iat > now + self.leeway:
            raise _Refused("issued in the future (iat)")
