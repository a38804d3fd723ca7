"""Signing keys at rest: key ids, generation, the public JWK of a key and back, the private key
encrypted for the database and decrypted from it, and rotation (the SQL is in `repository`).

Two keys sign at any time: the access-token key (JWT_ALGORITHM: ES256 or EdDSA), which also signs ES256
ID tokens, and an RSA key that signs only the ID tokens of clients registered for RS256. A rotation
replaces both; each new key is published KEY_PUBLICATION_LEAD_SECONDS before it signs."""

import base64
import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import Clock
from app.core.config import Settings
from app.keys import repository
from app.keys.crypto import decrypt_private_key, encrypt_private_key
from app.keys.repository import StoredKey

log = logging.getLogger("pyauth.keys")

Algorithm = Literal["ES256", "EdDSA", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | Ed25519PublicKey | rsa.RSAPublicKey

SUPPORTED_ALGORITHMS: Final[Mapping[str, tuple[str, str | None]]] = {
    # algorithm: (kty, crv) of its keys
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
}
# The algorithms access tokens may be signed with (JWT_ALGORITHM's choices). The RSA key is never one: it
# signs ID tokens only, and access-token verification refuses a token that names it.
ACCESS_TOKEN_ALGORITHMS: Final = frozenset({"ES256", "EdDSA"})
# What a client may register as `id_token_signed_response_alg` (app.clients.models.SigningAlgorithm).
ID_TOKEN_ALGORITHMS: Final = ("ES256", "RS256")
RSA_ALGORITHM: Final = "RS256"
# 2048 bits: NIST SP 800-57 Part 1 accepts it (112-bit strength) through 2030, every relying party takes
# it, and it signs about four times faster than 3072 bits (a signature per ID token, a key generation per
# rotation and per test). The key's size is read from the key itself, so raising this later needs only a
# rotation.
RSA_KEY_BITS: Final = 2048
RSA_PUBLIC_EXPONENT: Final = 65537


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def new_kid() -> str:
    return _b64url(secrets.token_bytes(16))


def _b64url_uint(value: int) -> str:
    # RFC 7518 §6.3.1: a Base64urlUInt is the big-endian value in as few octets as hold it.
    return _b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def signing_algorithms(settings: Settings) -> tuple[str, ...]:
    """The algorithms a current key is kept for: JWT_ALGORITHM's, and the RSA key's."""
    return (settings.JWT_ALGORITHM, RSA_ALGORITHM)


def replaced_algorithms(algorithm: str) -> frozenset[str]:
    """The keys a new key of `algorithm` takes over from: an access-token key replaces the access-token
    key of either algorithm (JWT_ALGORITHM may have changed), an RSA key the RSA key."""
    return ACCESS_TOKEN_ALGORITHMS if algorithm in ACCESS_TOKEN_ALGORITHMS else frozenset({algorithm})


def public_jwk(kid: str, algorithm: str, public_key: PublicKey) -> dict[str, str]:
    """The RFC 7517 / RFC 7518 / RFC 8037 JWK of a public key: public members only."""
    members: dict[str, str]
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        members = {"kty": "RSA", "n": _b64url_uint(rsa_numbers.n), "e": _b64url_uint(rsa_numbers.e)}
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
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
    if kty == "RSA":
        n = int.from_bytes(_b64url_decode(jwk["n"]), "big")
        e = int.from_bytes(_b64url_decode(jwk["e"]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
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
    if algorithm == RSA_ALGORITHM:
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)
    raise ValueError(f"unsupported signing algorithm {algorithm!r}")


_PRIVATE_KEY_TYPES: Final[Mapping[str, type]] = {
    "ES256": ec.EllipticCurvePrivateKey,
    "EdDSA": Ed25519PrivateKey,
    "RS256": rsa.RSAPrivateKey,
}


def load_private_key(stored: StoredKey, settings: Settings) -> PrivateKey:
    """Decrypt a stored private key; `KeyDecryptionError` if KEY_ENCRYPTION_KEY does not open it."""
    der = decrypt_private_key(
        stored.private_key_encrypted,
        kid=stored.kid,
        key_encryption_key=settings.KEY_ENCRYPTION_KEY.get_secret_value(),
    )
    # The blob decrypted under AES-GCM bound to its kid: it is the key pyauth generated, so OpenSSL's RSA
    # consistency check (about 0.1 s per RSA key, at each start and refresh) would prove nothing more.
    private_key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not (
        isinstance(private_key, ec.EllipticCurvePrivateKey | Ed25519PrivateKey | rsa.RSAPrivateKey)
        and isinstance(private_key, _PRIVATE_KEY_TYPES[stored.algorithm])
    ):
        raise ValueError(f"signing key {stored.kid}: private key does not match {stored.algorithm}")
    return private_key


async def add_signing_key(
    session: AsyncSession, settings: Settings, algorithm: str, *, now: datetime, active_from: datetime
) -> str:
    """Insert a new key of `algorithm` that signs from `active_from`; the keys it replaces
    (`replaced_algorithms`) stop signing then. Its kid. Flushes; the caller holds the generation lock
    and commits."""
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
        active_from=active_from,
    )
    await repository.retire_keys(
        session, algorithms=replaced_algorithms(algorithm), keeping=kid, at=active_from
    )
    log.info("signing key %s (%s) generated; it signs from %s", kid, algorithm, active_from.isoformat())
    return kid


async def rotate_signing_key(
    session: AsyncSession, settings: Settings, clock: Clock, *, lead: timedelta | None = None
) -> dict[str, str]:
    """A new key for each of `signing_algorithms` (the access-token key and the RSA key), published now
    and signing `lead` from now (KEY_PUBLICATION_LEAD_SECONDS unless given; zero: at once, as after a
    key is compromised). The keys they replace sign until then and stay published until their tokens
    have expired. The new kids by algorithm.

    Flushes; the caller commits.
    """
    await repository.lock_key_generation(session)
    now = clock.now()
    active_from = now + (timedelta(seconds=settings.KEY_PUBLICATION_LEAD_SECONDS) if lead is None else lead)
    return {
        algorithm: await add_signing_key(session, settings, algorithm, now=now, active_from=active_from)
        for algorithm in signing_algorithms(settings)
    }
