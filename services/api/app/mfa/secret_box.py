"""Encryption at rest of TOTP secrets: AES-256-GCM under a key derived from KEY_ENCRYPTION_KEY, the
key-encryption key of the signing keys, with a label of its own (so the two derived keys differ).

Stored blob: `version (1 byte) || nonce (12 bytes) || ciphertext+tag`. The user id is bound as associated
data, so a secret copied onto another user's row does not decrypt.
"""

import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.core.config import Settings

_VERSION = b"\x01"
_NONCE_BYTES = 12
# Changing this label changes the derived key: every stored secret would stop decrypting.
_HKDF_INFO = b"pyauth totp-secret encryption v1"


class SecretDecryptionError(Exception):
    """A stored TOTP secret did not decrypt: KEY_ENCRYPTION_KEY changed, or the row was altered."""


def _key(settings: Settings) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return hkdf.derive(settings.KEY_ENCRYPTION_KEY.get_secret_value().encode("utf-8"))


def _associated_data(user_id: uuid.UUID) -> bytes:
    return b"pyauth-totp:" + user_id.bytes


def seal(secret: str, *, user_id: uuid.UUID, settings: Settings) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(_key(settings)).encrypt(nonce, secret.encode("ascii"), _associated_data(user_id))
    return _VERSION + nonce + ciphertext


def open_sealed(blob: bytes, *, user_id: uuid.UUID, settings: Settings) -> str:
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
        raise SecretDecryptionError("stored TOTP secret has an unknown format")
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        plain = AESGCM(_key(settings)).decrypt(nonce, ciphertext, _associated_data(user_id))
    except InvalidTag:
        raise SecretDecryptionError("KEY_ENCRYPTION_KEY does not decrypt the stored TOTP secret") from None
    return plain.decode("ascii")
