"""The ID token of OpenID Connect Core §2: who signed in, for which client, when and how.

Signed with the algorithm the client registered (`id_token_signed_response_alg`: ES256 by default, with
the access-token key; RS256 with the key ring's RSA key), naming the published key by its `kid`.
`at_hash` (§3.1.3.6) ties it to the access token issued beside it: the base64url of the left half of the
hash of the access token, with the hash of the ID token's `alg` (SHA-256 for both ES256 and RS256).
"""

import base64
import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

from app.keys.keyring import KeyRing

# The hash of each algorithm's signature, which `at_hash` uses (OpenID Connect Core §3.1.3.6).
_HASHES: Final = {"ES256": hashlib.sha256, "RS256": hashlib.sha256}

# Long enough for a client to validate it on arrival; it is not a session (the refresh token is).
ID_TOKEN_TTL: Final = timedelta(minutes=5)


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
    subject: str,
    now: datetime,
    auth_time: datetime,
    amr: Sequence[str],
    nonce: str | None,
    access_token: str,
    scopes: Sequence[str],
    email: str,
    email_verified: bool,
) -> str:
    """A signed ID token for `client_id`, signed with `algorithm` (the client's
    `id_token_signed_response_alg`). The `email` scope adds `email` and `email_verified`."""
    key = keyring.signing_key(algorithm)
    issued_at = math.floor(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "azp": client_id,
        "exp": issued_at + int(ID_TOKEN_TTL.total_seconds()),
        "iat": issued_at,
        "auth_time": math.floor(auth_time.timestamp()),
        "amr": list(amr),
        "at_hash": at_hash(access_token, key.algorithm),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if "email" in scopes:
        claims["email"] = email
        claims["email_verified"] = email_verified
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )
