"""Private keys at rest: AES-256-GCM under a key derived from KEY_ENCRYPTION_KEY, bound to the kid."""

import pytest

from app.keys.crypto import KeyDecryptionError, decrypt_private_key, encrypt_private_key

SECRET = "a-key-encryption-key-of-at-least-32-chars"
PLAINTEXT = b"-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n"


def test_round_trip_returns_the_private_key() -> None:
    blob = encrypt_private_key(PLAINTEXT, kid="k1", key_encryption_key=SECRET)
    assert PLAINTEXT not in blob
    assert b"PRIVATE KEY" not in blob
    assert decrypt_private_key(blob, kid="k1", key_encryption_key=SECRET) == PLAINTEXT


def test_each_encryption_uses_a_fresh_nonce() -> None:
    first = encrypt_private_key(PLAINTEXT, kid="k1", key_encryption_key=SECRET)
    second = encrypt_private_key(PLAINTEXT, kid="k1", key_encryption_key=SECRET)
    assert first[1:13] != second[1:13]
    assert first != second


def test_a_different_key_encryption_key_does_not_decrypt() -> None:
    blob = encrypt_private_key(PLAINTEXT, kid="k1", key_encryption_key=SECRET)
    with pytest.raises(KeyDecryptionError, match="KEY_ENCRYPTION_KEY"):
        decrypt_private_key(blob, kid="k1", key_encryption_key=SECRET + "x")


def test_a_blob_moved_to_another_kid_does_not_decrypt() -> None:
    blob = encrypt_private_key(PLAINTEXT, kid="k1", key_encryption_key=SECRET)
    with pytest.raises(KeyDecryptionError):
        decrypt_private_key(blob, kid="k2", key_encryption_key=SECRET)


def test_a_tampered_blob_does_not_decrypt() -> None:
    blob = bytearray(encrypt_private_key(PLAINTEXT, kid="k1", key_encryption_key=SECRET))
    blob[-1] ^= 1
    with pytest.raises(KeyDecryptionError):
        decrypt_private_key(bytes(blob), kid="k1", key_encryption_key=SECRET)
    with pytest.raises(KeyDecryptionError, match="unknown format"):
        decrypt_private_key(b"\x02" + bytes(blob[1:]), kid="k1", key_encryption_key=SECRET)
