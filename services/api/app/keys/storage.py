"""Signing keys at rest: key ids, generation, the public JWK of a key and back, the private key
encrypted for the database and decrypted from it, and rotation (the SQL is in `repository`)."""

import base64
import logging
import secrets
from collections.abc import Mapping
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import Clock
from app.core.config import Settings
from app.keys import repository
from app.keys.crypto import decrypt_private_key, encrypt_private_key
from app.keys.repository import StoredKey

log = logging.getLogger("pyauth.keys")

Algorithm = Literal["ES256", "EdDSA"]
PrivateKey = ec.EllipticCurvePrivateKey | Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | Ed25519PublicKey

SUPPORTED_ALGORITHMS: Final[Mapping[str, tuple[str, str]]] = {
    # algorithm: (kty, crv) of its keys
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def new_kid() -> str:
    return _b64url(secrets.token_bytes(16))


def public_jwk(kid: str, algorithm: str, public_key: PublicKey) -> dict[str, str]:
    """The RFC 7517 / RFC 8037 JWK of a public key: public members only."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        members = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    return {**members, "kid": kid, "alg": algorithm, "use": "sig"}


def public_key_from_jwk(algorithm: str, jwk: Mapping[str, Any]) -> PublicKey:
    kty, crv = SUPPORTED_ALGORITHMS[algorithm]
    if jwk.get("kty") != kty or jwk.get("crv") != crv:
        raise ValueError(f"JWK is not a {kty}/{crv} key, as {algorithm} requires")
    if kty == "EC":
        x = int.from_bytes(_b64url_decode(jwk["x"]), "big")
        y = int.from_bytes(_b64url_decode(jwk["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))


def _generate_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {algorithm!r}")


def load_private_key(stored: StoredKey, settings: Settings) -> PrivateKey:
    """Decrypt a stored private key; `KeyDecryptionError` if KEY_ENCRYPTION_KEY does not open it."""
    der = decrypt_private_key(
        stored.private_key_encrypted,
        kid=stored.kid,
        key_encryption_key=settings.KEY_ENCRYPTION_KEY.get_secret_value(),
    )
    private_key = serialization.load_der_private_key(der, password=None)
    expected = ec.EllipticCurvePrivateKey if stored.algorithm == "ES256" else Ed25519PrivateKey
    if not isinstance(private_key, expected):
        raise ValueError(f"signing key {stored.kid}: private key does not match {stored.algorithm}")
    return private_key


async def rotate_signing_key(session: AsyncSession, settings: Settings, clock: Clock) -> str:
    """Insert a new key of JWT_ALGORITHM, retire every other unretired key, and return the new kid.

    Flushes; the caller commits. Retired keys stay published until their tokens have expired.
    """
    await repository.lock_key_generation(session)
    now = clock.now()
    algorithm = settings.JWT_ALGORITHM
    kid = new_kid()
    private_key = _generate_private_key(algorithm)
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    await repository.add_key(
        session,
        kid=kid,
        algorithm=algorithm,
        public_jwk=public_jwk(kid, algorithm, private_key.public_key()),
        private_key_encrypted=encrypt_private_key(
            der, kid=kid, key_encryption_key=settings.KEY_ENCRYPTION_KEY.get_secret_value()
        ),
        now=now,
    )
    await repository.retire_keys_other_than(session, kid, now=now)
    log.info("signing key %s (%s) generated; previous keys retired", kid, algorithm)
    return kid
