"""Access-token verification: RFC 9068 JWTs (`typ: at+jwt`) signed by a key of the key ring. The
grants issue them (`app.auth.issuing`); resource-server code verifies them here.

Verification follows RFC 8725: the algorithm is pinned per key (never taken from the token), key
location headers (`jku`, `x5u`, `jwk`, `x5c`) are refused rather than followed, and `exp`/`nbf`/`iat`
are checked against the injected clock, not the system one.

A client sends the same access token with every request for its lifetime, so a token once verified is
remembered (`VerifiedTokens`): a token seen again skips the signature check, the payload's decoding and
the checks of its claims that do not depend on the time, for the issuer, audience and required claims
they passed for; never the rest (its header's rules, its key still in the ring, its times against `now`).
"""

import base64
import functools
import hashlib
import json
import logging
import math
import re
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import jwt
import jwt.algorithms

from app.core.config import Settings
from app.core.errors import PyauthError
from app.keys.keyring import KeyRing, PublishedKey
from app.keys.storage import ACCESS_TOKEN_ALGORITHMS, PublicKey

log = logging.getLogger("pyauth.tokens")

ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
# Headers that point at a key to verify with: following them would let the token choose its own key.
# `crit`/`b64` would change how the token is parsed; pyauth never issues them.
FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64"})
REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid")
# What every token pyauth issued carries, whatever its audience and whether or not it has a session
# (a client_credentials token has none): what introspection and UserInfo check before their own rules.
ISSUED_CLAIMS: Final = ("iss", "aud", "sub", "exp", "iat", "nbf", "jti")
# Tolerated clock difference between the issuing and the verifying process, for nbf and iat only:
# expiry gets no leeway.
CLOCK_SKEW: Final = timedelta(seconds=30)
MAX_TOKEN_LENGTH: Final = 8192
# The header segment (base64url) is checked against this before any JSON parser sees it. pyauth's own
# headers (alg, kid, typ) take about 100 characters; 512 decode to at most 384 bytes, too shallow for a
# nested-array header to exhaust the parser's recursion limit (which older PyJWT lets escape as a 500).
MAX_HEADER_LENGTH: Final = 512


class InvalidAccessToken(PyauthError):
    """Any refusal of an access token. The message never says which check failed."""

    status_code = 401
    code = "invalid_token"
    message = "The access token is invalid or has expired."
    headers: Mapping[str, str] | None = MappingProxyType({"WWW-Authenticate": 'Bearer error="invalid_token"'})


class MissingAccessToken(InvalidAccessToken):
    """No bearer token at all (none sent, or credentials of another scheme). RFC 6750 §3.1: the challenge
    of a request that lacks any authentication information carries no error code, only the scheme."""

    message = "An access token is required."
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer realm="pyauth"'})


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified claims of an access token. `subject_id` is `sub` as a user id (None unless `sub` is a
    UUID in its canonical form), `session_id` is `sid` as a session id (None unless it is a UUID): pyauth
    issues both so, and they are read once per remembered token instead of once per request."""

    sub: str
    sid: str
    jti: str
    exp: int
    claims: Mapping[str, Any]
    subject_id: uuid.UUID | None
    session_id: uuid.UUID | None

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _timestamp(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    return now.timestamp()


def decode_access_token(keyring: KeyRing, settings: Settings, token: str, *, now: datetime) -> AccessClaims:
    """Verify an access token against the key ring, at time `now`; `InvalidAccessToken` if refused."""
    verified = _decode(
        keyring, settings, token, now=now, audience=settings.JWT_AUDIENCE, required=REQUIRED_CLAIMS
    )
    if verified.access is None:
        try:
            verified.access = _access_claims(verified.claims)
        except _Refused as refused:
            log.debug("access token refused: %s", refused.reason)
            raise InvalidAccessToken() from None
    return verified.access


def _access_claims(claims: Mapping[str, Any]) -> AccessClaims:
    sub = _non_empty_string(claims, "sub")
    sid = _non_empty_string(claims, "sid")
    return AccessClaims(
        sub=sub,
        sid=sid,
        jti=_non_empty_string(claims, "jti"),
        exp=math.floor(_numeric_date(claims, "exp")),
        claims=MappingProxyType(claims),
        subject_id=_canonical_uuid(sub),
        session_id=_uuid(sid),
    )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _canonical_uuid(value: str) -> uuid.UUID | None:
    parsed = _uuid(value)
    return parsed if parsed is not None and str(parsed) == value else None


async def verify_issued_token(
    keyring: KeyRing, settings: Settings, token: str, *, now: datetime
) -> Mapping[str, Any]:
    """The claims of an access token pyauth issued, for any audience and with or without a session: the
    signature, `typ`, `iss` and the times are checked, `aud` and `sid` are the caller's to check
    (introspection, UserInfo). `InvalidAccessToken` if refused."""
    await _pick_up_keys(keyring, token)
    verified = _decode(keyring, settings, token, now=now, audience=None, required=ISSUED_CLAIMS)
    return MappingProxyType(verified.claims)


def _decode(
    keyring: KeyRing,
    settings: Settings,
    token: str,
    *,
    now: datetime,
    audience: str | None,
    required: tuple[str, ...],
) -> "VerifiedToken":
    try:
        return _verify(keyring, settings, token, now=_timestamp(now), audience=audience, required=required)
    except _Refused as refused:
        log.debug("access token refused: %s", refused.reason)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # Whatever a hostile token makes the parser raise is a refusal (401), never a 500.
        log.debug("access token refused: %s", type(exc).__name__)
    raise InvalidAccessToken()


async def verify_access_token(
    keyring: KeyRing, settings: Settings, token: str, *, now: datetime
) -> AccessClaims:
    """`decode_access_token`, after letting the key ring pick up keys made by other processes: the
    periodic refresh, and a rate-limited one when the token names a key id not seen yet."""
    await _pick_up_keys(keyring, token)
    return decode_access_token(keyring, settings, token, now=now)


async def _pick_up_keys(keyring: KeyRing, token: str) -> None:
    if keyring.refresh_due():
        await keyring.maybe_refresh()
    kid = _unverified_kid(token)
    if kid is not None and keyring.key_for(kid) is None:
        await keyring.refresh_for_unknown_kid(kid)


def _size_refusal(token: object) -> str | None:
    """Why a token is refused by its size alone, before any of it is decoded; None if it may be parsed."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return "not a string of acceptable length"
    if len(token.split(".", 1)[0]) > MAX_HEADER_LENGTH:
        return f"header over {MAX_HEADER_LENGTH} characters"
    return None


def _unverified_kid(token: str) -> str | None:
    try:
        kid = _header(_segments(token)[0]).get("kid")
    except (_Refused, ValueError, TypeError, RecursionError):
        return None
    return kid if isinstance(kid, str) and 0 < len(kid) <= 64 else None


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused(f"{name} is not a NumericDate")
    try:
        number = float(value)
    except OverflowError:
        raise _Refused(f"{name} is out of range") from None
    if not math.isfinite(number):
        raise _Refused(f"{name} is out of range")
    return number


def _non_empty_string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise _Refused(f"{name} is not a non-empty string")
    return value


def _verify(
    keyring: KeyRing,
    settings: Settings,
    token: str,
    *,
    now: float,
    audience: str | None,
    required: tuple[str, ...],
) -> "VerifiedToken":
    """The token parsed once: each segment checked and decoded, the header's rules, the signature with the
    key its `kid` names (by the key's own algorithm, through PyJWT's implementation of it), then the claims
    as PyJWT's `decode` would check them (`require`, `iss`, `aud`) and the times against `now`. A token
    verified before by this process (`VERIFIED`) skips the signature and, for the same issuer, audience and
    required claims, the checks that do not depend on `now`."""
    header_segment, payload_segment, signature_segment = _segments(token)
    key = _key_for(keyring, _header(header_segment))
    digest = _digest(token)
    verified = VERIFIED.remembered(digest, key)
    remembered = verified is not None
    if verified is None:
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        signature = _base64url(signature_segment)
        if not _ALGORITHMS[key.algorithm].verify(signing_input, key.public_key, signature):
            raise _Refused("bad signature")
        verified = VerifiedToken(key.public_key, _json_object(payload_segment, "payload"))
    checks = (settings.issuer, audience, required)
    if checks not in verified.passed:
        _check_claims(verified.claims, issuer=settings.issuer, audience=audience, required=required)
        verified.passed.add(checks)
    _check_times(verified.claims, now=now)
    if not remembered:  # only a token whose claims passed is kept
        VERIFIED.remember(digest, verified)
    return verified


@dataclass(slots=True)
class VerifiedToken:
    """A token whose signature was verified by `public_key`: its decoded claims, the (issuer, audience,
    required claims) its claims passed the checks that do not depend on the time for, and its
    `AccessClaims` once read. The claims are shared: read them, never change them."""

    public_key: PublicKey
    claims: dict[str, Any]
    passed: set[tuple[str, str | None, tuple[str, ...]]] = field(default_factory=set)
    access: AccessClaims | None = None


def _digest(token: str) -> bytes:
    """What a verified token is remembered by: its BLAKE2b-256 (a collision-resistant hash of the whole
    token, as SHA-256 would be: in a request, OpenSSL's SHA-256 cost 9 µs, this 4)."""
    return hashlib.blake2b(token.encode(), digest_size=32).digest()


class VerifiedTokens:
    """The tokens this process verified, by a digest of the token (`_digest`; the token is not kept). At
    most `size`; the oldest goes first. An ECDSA verification was ~90 µs of a `GET /users/me`'s ~320 µs of
    CPU, the claims' checks and reading ~10 more.

    A remembered token is only as good as its key: it is found only while the ring still names the same
    key object for its `kid` (a key dropped from the ring, or another one under the same id, means a full
    verification, which fails)."""

    def __init__(self, size: int) -> None:
        self._size = size
        # Ordered, not a dict: taking a dict's first key after many deletions at its front walks past their
        # empty slots (+2.3 µs a verification when no token comes back, against +0.9 µs here).
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    def remembered(self, digest: bytes, key: PublishedKey) -> VerifiedToken | None:
        verified = self._entries.get(digest)
        if verified is None or verified.public_key is not key.public_key:
            return None
        return verified

    def remember(self, digest: bytes, verified: VerifiedToken) -> None:
        if self._size <= 0:
            return
        if len(self._entries) >= self._size:
            self._entries.popitem(last=False)
        self._entries[digest] = verified

    def __len__(self) -> int:
        return len(self._entries)


# Per process: at ~2 KiB a token (its claims and their strings, the digest), ~8 MiB at most per worker.
VERIFIED = VerifiedTokens(size=4096)


def _key_for(keyring: KeyRing, header: Mapping[str, Any]) -> PublishedKey:
    """The key the header's `kid` names, if the header may be verified with it (RFC 8725)."""
    if forbidden := FORBIDDEN_HEADERS & header.keys():
        raise _Refused(f"forbidden header(s) {sorted(forbidden)}")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise _Refused("typ is not at+jwt")
    kid = header.get("kid")
    key = keyring.key_for(kid) if isinstance(kid, str) else None
    if key is None:
        raise _Refused(f"unknown kid {str(kid)[:64]!r}")
    if key.algorithm not in ACCESS_TOKEN_ALGORITHMS:  # the RSA key signs ID tokens only
        raise _Refused(f"key {kid} does not sign access tokens")
    # Pinned per key: a token cannot pick `none`, HS256 or another curve by naming it.
    if header.get("alg") != key.algorithm:
        raise _Refused(f"alg {str(header.get('alg'))[:16]!r} is not the algorithm of key {kid}")
    return key


def _check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str | None, required: tuple[str, ...]
) -> None:
    """The checks of the claims that do not depend on the time (`_check_times` does)."""
    for name in required:
        if claims.get(name) is None:
            raise _Refused(f"{name} is missing")
    if claims["iss"] != issuer:
        raise _Refused("iss is not this issuer")
    if audience is not None and audience not in _audiences(claims["aud"]):
        raise _Refused("aud does not name this audience")
    for name in ("exp", "nbf", "iat"):
        _numeric_date(claims, name)
    _non_empty_string(claims, "sub")
    _non_empty_string(claims, "jti")


def _check_times(claims: Mapping[str, Any], *, now: float) -> None:
    """`exp`, `nbf` and `iat` against `now`: NumericDates, as `_check_claims` made sure."""
    skew = CLOCK_SKEW.total_seconds()
    if claims["exp"] <= now:
        raise _Refused("expired")
    if claims["nbf"] > now + skew:
        raise _Refused("not yet valid (nbf)")
    if claims["iat"] > now + skew:
        raise _Refused("issued in the future (iat)")


# The algorithms' implementations (signature verification) of PyJWT, by name.
_ALGORITHMS: Final = jwt.algorithms.get_default_algorithms()
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _segments(token: str) -> tuple[str, str, str]:
    """The compact serialization's three segments (RFC 7515 §7.1), after the size checks."""
    if (refusal := _size_refusal(token)) is not None:
        raise _Refused(refusal)
    segments = token.split(".")
    if len(segments) != 3:
        raise _Refused("not three segments")
    header, payload, signature = segments
    return header, payload, signature


def _base64url(segment: str) -> bytes:
    """A segment's bytes: base64url without padding (RFC 7515 §2), every character checked (Python's
    decoder would skip characters outside the alphabet)."""
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise _Refused("a segment is not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(segment: str, what: str) -> dict[str, Any]:
    value = json.loads(_base64url(segment))
    if not isinstance(value, dict):
        raise _Refused(f"the {what} is not a JSON object")
    return value


@functools.lru_cache(maxsize=64)
def _header(segment: str) -> Mapping[str, Any]:
    """The JOSE header of a header segment, read-only. Every token a key signs has the same header
    segment, so the last few are kept: a token's header was decoded twice per verification (for its
    `kid`, then to verify), ~6 µs of a `GET /users/me`. A segment that is refused is not kept."""
    return MappingProxyType(_json_object(segment, "header"))


def _audiences(aud: object) -> list[str]:
    """`aud` as a list of strings (RFC 7519 §4.1.3: one string or an array of them)."""
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(value, str) for value in audiences):
        raise _Refused("aud is not a string or an array of strings")
    return audiences
