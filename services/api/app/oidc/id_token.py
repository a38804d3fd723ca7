"""The ID token of OpenID Connect Core §2: who signed in, for which client, when and how.

Signed with the algorithm the client registered (`id_token_signed_response_alg`: ES256 by default, with
the access-token key; RS256 with the key ring's RSA key), naming the published key by its `kid`.
`at_hash` (§3.1.3.6) ties it to the access token issued beside it: the base64url of the left half of the
hash of the access token, with the hash of the ID token's `alg` (SHA-256 for both ES256 and RS256). The
user claims are those the scopes grant (`app.oidc.claims`, as UserInfo answers them).

The code grant issues one with the code's `nonce`; a refresh whose access token carries `openid` issues one
too (OpenID Connect Core §12.2): the same `iss`, `sub`, `aud`, `azp` and `auth_time` (the original sign-in),
a new `iat`, and no `nonce` (the nonce belongs to the authentication request, which a refresh is not).
Both carry `acr` (§2), derived from `amr` as the access token's is (`app.oidc.acr`):
`urn:pyauth:acr:mfa` after a second factor, else `urn:pyauth:acr:pwd`.

An ID token comes back as an `id_token_hint` (to the authorization endpoint and to the end-session
endpoint): `verified_hint` checks it was one of this server's and says whom and which client it names.
"""

import base64
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt
from jwt.types import Options

from app.core.errors import PyauthError
from app.keys.keyring import KeyRing
from app.keys.signing import sign_jwt
from app.keys.tokens import FORBIDDEN_HEADERS, MAX_HEADER_LENGTH, MAX_TOKEN_LENGTH
from app.oidc.acr import acr_of
from app.oidc.claims import scope_claims
from app.users.models import User

log = logging.getLogger("pyauth.oidc")

# The hash of each algorithm's signature, which `at_hash` uses (OpenID Connect Core §3.1.3.6).
_HASHES: Final = {"ES256": hashlib.sha256, "RS256": hashlib.sha256}

# Long enough for a client to validate it on arrival; it is not a session (the refresh token is).
ID_TOKEN_TTL: Final = timedelta(minutes=5)
MAX_KID_LENGTH: Final = 64


def at_hash(access_token: str, algorithm: str) -> str:
    digest = _HASHES[algorithm](access_token.encode("ascii")).digest()
    half = digest[: len(digest) // 2]
    return base64.urlsafe_b64encode(half).rstrip(b"=").decode()


def issue_id_token(
    keyring: KeyRing,
    *,
    algorithm: str,
    issuer: str,
    client_id: str,
    user: User,
    now: datetime,
    auth_time: datetime,
    amr: Sequence[str],
    nonce: str | None,
    access_token: str,
    scopes: Sequence[str],
) -> str:
    """A signed ID token about `user` for `client_id`, with the claims `scopes` grant, signed with
    `algorithm` (the client's `id_token_signed_response_alg`)."""
    key = keyring.signing_key(algorithm)
    issued_at = math.floor(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user.id),
        "aud": client_id,
        "azp": client_id,
        "exp": issued_at + int(ID_TOKEN_TTL.total_seconds()),
        "iat": issued_at,
        "auth_time": math.floor(auth_time.timestamp()),
        "amr": list(amr),
        "acr": acr_of(amr),
        "at_hash": at_hash(access_token, key.algorithm),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    claims |= scope_claims(user, scopes)
    return sign_jwt(key, claims, typ="JWT")


class InvalidIdTokenHint(PyauthError):
    """An `id_token_hint` that is not an ID token this server signed: shown as an error page."""

    status_code = 400
    code = "invalid_request"
    message = "The id_token_hint is not an ID token issued by this server."


@dataclass(frozen=True, slots=True)
class IdTokenHint:
    """Who an `id_token_hint` names: the user (`sub`) and the client it was issued to (`aud`)."""

    subject: str
    client_id: str


async def verified_hint(keyring: KeyRing, token: str, *, issuer: str) -> IdTokenHint:
    """The subject and client of an `id_token_hint` (OpenID Connect Core §3.1.2.1, RP-Initiated Logout
    §2): signed by one of the published keys, with the algorithm pinned to that key (RFC 8725), issued
    by this server, and an ID token (`typ: JWT`, not an access token's `at+jwt`). It may have expired: a
    hint says who the user was, it grants nothing, and the specifications allow an expired one. Its age
    is still bounded, by the key ring: a key retired long ago is no longer published, and its tokens
    no longer verify. `InvalidIdTokenHint` otherwise."""
    try:
        return await _verified_hint(keyring, token, issuer=issuer)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError, KeyError) as exc:
        # Whatever a hostile token makes the parser raise is a refusal, never a 500.
        log.debug("id_token_hint refused: %s", type(exc).__name__)
    raise InvalidIdTokenHint()


async def _verified_hint(keyring: KeyRing, token: str, *, issuer: str) -> IdTokenHint:
    if not token or len(token) > MAX_TOKEN_LENGTH or len(token.split(".", 1)[0]) > MAX_HEADER_LENGTH:
        raise ValueError("size")
    header = jwt.get_unverified_header(token)
    typ, kid = header.get("typ"), header.get("kid")
    if FORBIDDEN_HEADERS & header.keys() or not isinstance(typ, str) or typ.upper() != "JWT":
        raise ValueError("header")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise ValueError("kid")
    await keyring.maybe_refresh()
    if not await keyring.refresh_for_unknown_kid(kid):
        raise KeyError("kid")
    key = keyring.key_for(kid)
    if key is None or header.get("alg") != key.algorithm:
        raise ValueError("alg")
    options: Options = {
        "verify_exp": False,  # an expired ID token is still a hint (RP-Initiated Logout §2)
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,  # the audience is the client, compared by the caller
        "require": ["iss", "sub", "aud", "iat"],
    }
    claims = jwt.decode(token, key.public_key, algorithms=[key.algorithm], issuer=issuer, options=options)
    subject, audience = claims["sub"], claims["aud"]
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    if not isinstance(subject, str) or not subject or not isinstance(audience, str) or not audience:
        raise ValueError("sub or aud")
    return IdTokenHint(subject=subject, client_id=audience)
