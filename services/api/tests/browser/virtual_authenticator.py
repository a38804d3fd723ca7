"""Passkeys in a real Chromium: Selenium's WebDriver virtual authenticator (W3C WebAuthn L3 §11, "Automation")
holding a resident (discoverable) credential whose key pair the test made, so that pyauth knows the same
passkey.

The passkey is registered through pyauth's own API (`/users/me/passkeys`) by the software authenticator
(tests/passkeys/authenticator.py) with a P-256 key generated here; the same private key (PKCS#8), credential
id and user handle then go into Chromium's virtual authenticator (CTAP2, internal transport, resident keys,
user verification that succeeds), which answers `navigator.credentials.get()` on the pages as a laptop's
platform authenticator would:

    async with httpx.AsyncClient(base_url=live_server.url) as client:
        email, tokens = await signed_up(client, live_email("passkey"))
        passkey = await registered_passkey(client, tokens, origin=localhost_url(live_server.url))
    with virtual_authenticator(browser.driver) as driver:
        load_passkey(driver, passkey)
        ...  # the pages, at localhost_url(live_server.url)

WebAuthn needs a secure context and a domain as RP id: the app is served on 127.0.0.1, an IP address, which
no browser accepts as an RP id, so the browser tests open it as http://localhost:<port> (a secure context
too), and the browser tests' server is configured with `webauthn_settings` (RP id `localhost`, that origin).
"""

from base64 import urlsafe_b64decode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from selenium.webdriver import Chrome
from selenium.webdriver.common.virtual_authenticator import (
    Credential,
    Protocol,
    Transport,
    VirtualAuthenticatorOptions,
)

from tests.auth.helpers import Tokens
from tests.passkeys.authenticator import SoftAuthenticator

RP_ID = "localhost"
REGISTRATION_OPTIONS = "/users/me/passkeys/registration/options"
PASSKEYS = "/users/me/passkeys"


def localhost_url(url: str) -> str:
    """`url` (http://127.0.0.1:<port>...) with `localhost` as its host, which WebAuthn accepts."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{RP_ID}:{parts.port}" if parts.port else RP_ID))


def webauthn_settings(url: str) -> dict[str, Any]:
    """The settings that let pages served at `url` (on loopback) run WebAuthn ceremonies from localhost."""
    return {"WEBAUTHN_RP_ID": RP_ID, "WEBAUTHN_ORIGINS": [localhost_url(url)]}


@dataclass(frozen=True)
class Passkey:
    """A discoverable credential known to pyauth, as the virtual authenticator must hold it."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    user_handle: bytes
    rp_id: str = RP_ID
    sign_count: int = 0

    def pkcs8(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


async def registered_passkey(
    client: httpx.AsyncClient, tokens: Tokens, *, origin: str, rp_id: str = RP_ID, name: str = "Laptop"
) -> Passkey:
    """Register a new device-bound passkey (a P-256 key made here) for the signed-in user of `tokens`
    through the API, as a platform authenticator (transport `internal`) at `origin` would."""
    key = ec.generate_private_key(ec.SECP256R1())
    authenticator = SoftAuthenticator(origin=origin, rp_id=rp_id, key=key)
    options = await client.post(REGISTRATION_OPTIONS, headers=tokens.bearer)
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json())
    credential["response"]["transports"] = ["internal"]
    credential["authenticatorAttachment"] = "platform"
    added = await client.post(PASSKEYS, headers=tokens.bearer, json={"name": name, "credential": credential})
    assert added.status_code == 201, added.text
    assert authenticator.user_handle is not None
    return Passkey(authenticator.credential_id, key, authenticator.user_handle, rp_id, authenticator.counter)


def authenticator_options() -> VirtualAuthenticatorOptions:
    """A laptop's platform authenticator: CTAP2 over `internal`, resident keys, user verification (a
    fingerprint or PIN) that the user passes."""
    return VirtualAuthenticatorOptions(
        protocol=Protocol.CTAP2,
        transport=Transport.INTERNAL,
        has_resident_key=True,
        has_user_verification=True,
        is_user_consenting=True,
        is_user_verified=True,
    )


@contextmanager
def virtual_authenticator(
    driver: Chrome, options: VirtualAuthenticatorOptions | None = None
) -> Iterator[Chrome]:
    """`driver` with a virtual authenticator (`authenticator_options` by default), removed afterwards so
    that the next test's browser has none."""
    driver.add_virtual_authenticator(options or authenticator_options())
    try:
        yield driver
    finally:
        driver.remove_virtual_authenticator()


def load_passkey(driver: Chrome, passkey: Passkey) -> None:
    """Put `passkey` into the driver's virtual authenticator as a resident credential."""
    driver.add_credential(
        Credential.create_resident_credential(
            id=passkey.credential_id,
            rp_id=passkey.rp_id,
            user_handle=passkey.user_handle,
            private_key=passkey.pkcs8(),
            sign_count=passkey.sign_count,
        )
    )


def stored_credential_ids(driver: Chrome) -> list[bytes]:
    """The ids of the credentials the driver's virtual authenticator holds."""
    return [urlsafe_b64decode(credential.id + "==") for credential in driver.get_credentials()]
