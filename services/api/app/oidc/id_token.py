"""The ID token of OpenID Connect Core §2: who signed in, for which client, when and how.

Signed with the key ring's current key (ES256 by default, the key published in the JWKS), with its `kid`.
`at_hash` (§3.1.3.6) ties it to the access token issued beside it: the base64url of the left half of the
SHA-256 of the access token (ES256 and RS256 both hash with SHA-256). The user claims are those the scopes
grant (`app.oidc.claims`, as UserInfo answers them).

The code grant issues one with the code's `nonce`; a refresh whose access token carries `openid` issues one
too (OpenID Connect Core §12.2): the same `iss`, `sub`, `aud`, `azp` and `auth_time` (the original sign-in),
a new `iat`, and no `nonce` (the nonce belongs to the authentication request, which a refresh is not).
"""

import base64
import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

from app.keys.keyring import KeyRing
from app.oidc.claims import scope_claims
from app.users.models import User

# Long enough for a client to validate it on arrival; it is not a session (the refresh token is).
ID_TOKEN_TTL: Final = timedelta(minutes=5)


def at_hash(access_token: str) -> str:
    half = hashlib.sha256(access_token.encode("ascii")).digest()[:16]
    return base64.urlsafe_b64encode(half).rstrip(b"=").decode()


def issue_id_token(
    keyring: KeyRing,
    *,
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
    """A signed ID token about `user` for `client_id`, with the claims `scopes` grant."""
    key = keyring.current
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
        "at_hash": at_hash(access_token),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    claims |= scope_claims(user, scopes)
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )
