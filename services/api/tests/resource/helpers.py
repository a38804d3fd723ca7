"""Tokens for the library's tests: pyauth's own (`issue_access_token` with the running key ring) and
forgeries built by hand, byte by byte, where a test needs a header pyauth would never write."""

import base64
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from app.auth.issuing import issue_access_token
from tests.resource.conftest import Pyauth


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def issued(pyauth: Pyauth, **extra_claims: Any) -> str:
    """An access token issued by pyauth's own code with its current key, carrying `extra_claims`
    (scope, roles, client_id: what the OIDC clients of issue 11 will add)."""
    now = pyauth.clock.now()
    token, _ = issue_access_token(
        pyauth.keyring,
        pyauth.settings,
        subject=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        now=now,
        amr=extra_claims.pop("amr", ["pwd"]),
        auth_time=now,
        client_id=extra_claims.pop("client_id", "pyauth"),
        scope=str(extra_claims.pop("scope", "")).split(),
        extra_claims={"roles": [], **extra_claims},
    )
    return token


def claims(pyauth: Pyauth, **overrides: Any) -> dict[str, Any]:
    """A payload as pyauth writes it, with overrides (None removes a claim)."""
    now = math.floor(pyauth.clock.now().timestamp())
    payload: dict[str, Any] = {
        "iss": pyauth.issuer,
        "aud": pyauth.settings.JWT_AUDIENCE,
        "sub": str(uuid.uuid4()),
        "exp": now + 900,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),
        "amr": ["pwd"],
        "auth_time": now,
        "roles": [],
        "client_id": "pyauth",  # the built-in client (RFC 9068 §2.2)
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not None}


def signed_with_pyauth_key(pyauth: Pyauth, payload: Mapping[str, Any], **header: Any) -> str:
    """Signed with pyauth's real current private key, with the header given (kid/alg/typ default to
    pyauth's own): a token only the issuer could make, but with contents it would not write."""
    key = pyauth.keyring.current
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    return jwt.encode(dict(payload), key.private_key, algorithm=key.algorithm, headers=headers)


def signed_with_stranger_key(payload: Mapping[str, Any], kid: str) -> str:
    """Signed with a key pyauth never published, under `kid`."""
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(dict(payload), key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


def unsigned(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b"") -> str:
    return f"{segment(header)}.{segment(payload)}.{b64url(signature)}"
