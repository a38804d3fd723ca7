"""`app.keys.signing.sign_jwt` held to PyJWT: for every algorithm a key of the ring may have, the same
header as `jwt.encode` writes, the same claims, a signature PyJWT verifies (RFC 7515 §7.1, RFC 7518
§3.4 for ES256's raw R || S), and one that fails once a byte of the token changes."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.keys.keyring import CurrentKey
from app.keys.signing import sign_jwt
from app.keys.storage import PrivateKey

CLAIMS: dict[str, Any] = {
    "email_verified": False,
    "roles": ["user", "admin"],
    "iss": "https://auth.example.com",
    "aud": "pyauth",
    "sub": "8e1ce169-13f0-4305-9129-7b967d744dd3",
    "exp": 1_800_000_900,
    "iat": 1_800_000_000,
    "amr": ["pwd", "otp"],
    # Quotes, a backslash, control and non-ASCII characters, U+2028: escaped or written as UTF-8.
    "name": 'Jörg "the\\one" \u2028\x01 Ωmega',
    "auth_time": 1_799_999_000,
}


def _key(algorithm: str) -> CurrentKey:
    private_key: PrivateKey
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "EdDSA":
        private_key = Ed25519PrivateKey.generate()
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    return CurrentKey("kid-" + algorithm, algorithm, private_key, now, None)


def _segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256"])
@pytest.mark.parametrize("typ", ["at+jwt", "JWT"])
def test_rfc7515_compact_jws_matches_pyjwt(algorithm: str, typ: str) -> None:
    key = _key(algorithm)
    token = sign_jwt(key, CLAIMS, typ=typ)
    reference = jwt.encode(CLAIMS, key.private_key, algorithm=algorithm, headers={"kid": key.kid, "typ": typ})
    assert token.split(".")[0] == reference.split(".")[0]  # the very same header segment
    assert json.loads(_segment(token, 0)) == {"alg": algorithm, "kid": key.kid, "typ": typ}
    assert json.loads(_segment(token, 1)) == CLAIMS
    assert "=" not in token  # base64url without padding (RFC 7515 §2)
    verified = jwt.decode(
        token,
        key.private_key.public_key(),
        algorithms=[algorithm],
        audience="pyauth",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert verified == CLAIMS


def test_rfc7518_es256_signature_is_raw_r_and_s() -> None:
    token = sign_jwt(_key("ES256"), CLAIMS, typ="at+jwt")
    assert len(_segment(token, 2)) == 64  # R || S, 32 octets each, not DER


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256"])
def test_rfc7515_signature_covers_header_and_payload(algorithm: str) -> None:
    key = _key(algorithm)
    header, payload, signature = sign_jwt(key, CLAIMS, typ="at+jwt").split(".")
    other_payload = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "someone-else"}).encode())
    other_header = base64.urlsafe_b64encode(b'{"alg":"%s","kid":"other","typ":"at+jwt"}' % algorithm.encode())
    for forged in (
        f"{header}.{other_payload.rstrip(b'=').decode()}.{signature}",
        f"{other_header.rstrip(b'=').decode()}.{payload}.{signature}",
    ):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(
                forged,
                key.private_key.public_key(),
                algorithms=[algorithm],
                audience="pyauth",
                options={"verify_exp": False, "verify_iat": False},
            )


@pytest.mark.parametrize(
    ("algorithm", "private_key"),
    [
        ("ES256", Ed25519PrivateKey.generate()),
        ("EdDSA", ec.generate_private_key(ec.SECP256R1())),
        ("ES256", ec.generate_private_key(ec.SECP384R1())),
        ("HS256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_a_key_signs_only_its_own_algorithm(algorithm: str, private_key: PrivateKey) -> None:
    key = CurrentKey("kid", algorithm, private_key, datetime.now(UTC), None)
    with pytest.raises(ValueError, match="does not sign"):
        sign_jwt(key, CLAIMS, typ="at+jwt")
