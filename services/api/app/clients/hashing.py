"""Client secrets: 256 random bits shown once, stored as their SHA-256 digest, checked in constant time.

Why not argon2: a slow hash protects low-entropy human passwords against offline guessing. A client
secret is generated here with 256 bits of entropy, so its digest cannot be reversed or guessed however
fast the hash is (the same reasoning as refresh tokens, `app.core.opaque_tokens`), and the token endpoint
pays no argon2 cost per client request.
"""

import hmac
from collections.abc import Iterable

from app.core.opaque_tokens import digest, new_token


def new_secret() -> tuple[str, bytes]:
    """A new secret for the client (shown once) and the digest to store."""
    return new_token()


def secret_matches(secret: str, stored: Iterable[bytes]) -> bool:
    """Whether `secret` is one of the stored digests. Every digest is compared, each in constant time,
    so the answer's timing says nothing about which one matched or how much of it did."""
    presented = digest(secret)
    matched = False
    for candidate in stored:
        matched |= hmac.compare_digest(presented, candidate)
    return matched
