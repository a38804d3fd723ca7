"""Encryption at rest of signing private keys: AES-256-GCM under a key derived from KEY_ENCRYPTION_KEY.

Stored blob: `version (1 byte) || nonce (12 bytes) || ciphertext+tag`. The key id is bound as
associated data, so a blob copied onto another row does not decrypt.
"""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE_BYTES = 12
# Changing this label changes the derived key: every stored key would stop decrypting.
_HKDF_INFO = b"pyauth signing-key encryption v1"


class KeyDecryptionError(Exception):
    """A stored private key did not decrypt: KEY_ENCRYPTION_KEY changed, or the row was altered."""


def _derive_key(key_encryption_key: str) -> bytes:
    # KEY_ENCRYPTION_KEY is any string of 32+ characters; HKDF turns it into exactly 32 bytes.
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return hkdf.derive(key_encryption_key.encode("utf-8"))


def _associated_data(kid: str) -> bytes:
    return b"pyauth-signing-key:" + kid.encode("utf-8")


def encrypt_private_key(private_key: bytes, *, kid: str, key_encryption_key: str) -> bytes:
    """Encrypt a serialized private key (PKCS8 DER or PEM) for the row whose key id is `kid`."""
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(_derive_key(key_encryption_key)).encrypt(nonce, private_key, _associated_data(kid))
    return _VERSION + nonce + ciphertext


def decrypt_private_key(blob: bytes, *, kid: str, key_encryption_key: str) -> bytes:
    """The serialized private key, or `KeyDecryptionError` if the key or the blob is wrong."""
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
        raise KeyDecryptionError(f"signing key {kid}: stored private key has an unknown format")
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        return AESGCM(_derive_key(key_encryption_key)).decrypt(nonce, ciphertext, _associated_data(kid))
    except InvalidTag:
        raise KeyDecryptionError(
            f"signing key {kid}: KEY_ENCRYPTION_KEY does not decrypt it "
            "(was KEY_ENCRYPTION_KEY changed, or the row altered?)"
        ) from None
