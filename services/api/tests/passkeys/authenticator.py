"""A software WebAuthn authenticator for the tests: it answers `navigator.credentials.create()` and
`.get()` options as a browser with a real authenticator would, so that pyauth's ceremonies are tested
end to end with real signatures (ES256 over the authenticator data and the client-data hash,
WebAuthn §6.1, §6.5) rather than with mocks.

It writes `none` attestation and lets a test choose what a real authenticator decides: the origin the
browser reports, the RP id it hashes, the UV and backup flags, and the sign counter (to play a clone).
"""

import base64
import hashlib
import json
import secrets
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
COSE_ES256 = -7


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One credential, made by `create`, then used by `get`. `counter` is its signature counter (a
    device-bound security key counts; most synced passkeys send 0 always: `counting=False`)."""

    origin: str
    rp_id: str
    backup_eligible: bool = False
    counting: bool = True
    aaguid: uuid.UUID = field(default_factory=uuid.uuid4)
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    counter: int = 0
    user_handle: bytes | None = None

    def _flags(self, *, uv: bool, at: bool = False) -> int:
        flags = UP | (UV if uv else 0)
        if self.backup_eligible:
            flags |= BE | BS
        return flags | (AT if at else 0)

    def _cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: COSE_ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def create(
        self, options: dict[str, Any], *, uv: bool = True, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """RegistrationResponseJSON answering PublicKeyCredentialCreationOptionsJSON."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = (
            self.aaguid.bytes
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_public_key()
        )
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([self._flags(uv=uv, at=True)])
            + struct.pack(">I", self.counter)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["usb"] if not self.backup_eligible else ["hybrid", "internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        uv: bool = True,
        origin: str | None = None,
        rp_id: str | None = None,
        counter: int | None = None,
    ) -> dict[str, Any]:
        """AuthenticationResponseJSON answering PublicKeyCredentialRequestOptionsJSON. The counter goes up
        by one per signature unless `counter` says what to send (a clone sends a stale one)."""
        if counter is not None:
            sent = counter
        elif self.counting:
            self.counter += 1
            sent = self.counter
        else:
            sent = 0
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([self._flags(uv=uv)])
            + struct.pack(">I", sent)
        )
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(self.user_handle) if self.user_handle else None,
            },
            "clientExtensionResults": {},
        }
