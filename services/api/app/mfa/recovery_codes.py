"""Recovery codes: ten single-use codes that stand in for the authenticator when it is lost.

Each is 128 random bits written as 26 base32 characters in groups (easy to type from paper); the server
keeps only SHA-256 digests. With 128 bits of entropy a fast hash is enough: nobody can enumerate the
input space, so a slow password hash (argon2) would only add cost per login, not safety.
"""

import base64
import hashlib
import secrets
from typing import Final

COUNT: Final = 10
_BYTES = 16  # 128 bits


def new_codes() -> list[str]:
    return [
        _format(base64.b32encode(secrets.token_bytes(_BYTES)).decode("ascii").rstrip("=").lower())
        for _ in range(COUNT)
    ]


def _format(raw: str) -> str:
    return "-".join(raw[i : i + 5] for i in range(0, len(raw), 5))


def normalize(code: str) -> str:
    """What a user types, compared case- and separator-insensitively."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def digest(code: str) -> bytes:
    return hashlib.sha256(normalize(code).encode("ascii", "replace")).digest()
