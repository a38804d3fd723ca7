"""Opaque bearer secrets (refresh, and later reset and verification tokens): 256 random bits handed to
the client once, and only their SHA-256 digest stored. A digest of a 256-bit random value cannot be
reversed or guessed, so a leaked table grants nothing."""

import hashlib
import secrets

TOKEN_BYTES = 32


def new_token() -> tuple[str, bytes]:
    """A fresh token for the client and the digest to store."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, digest(token)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
