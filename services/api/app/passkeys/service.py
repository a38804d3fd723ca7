"""Passkeys (W3C WebAuthn Level 3, with py_webauthn): the registration ceremony (§7.1), the
authentication ceremony (§7.2) and the signed-in user's management of their passkeys.

Every ceremony starts with options holding a fresh 256-bit challenge, of which only the SHA-256 digest is
stored, bound to the user (or, for a passwordless sign-in, to nobody) and optionally to a sign-in attempt,
for WEBAUTHN_CHALLENGE_TTL_SECONDS. The answer names its challenge in clientDataJSON; the row is deleted in
the statement that finds it, so a challenge is answered once (§13.4.3), across replicas too.

The assertion service, for the MFA grant and passwordless sign-in:

    options = await authentication_options(db, user_or_none, settings=s, ctx=ctx, attempt=a)
    verified = await verify_assertion(db, credential_json, user=user_or_none, settings=s, ctx=ctx, attempt=a)
    verified.user, verified.amr  # the account, and "hwk" or "swk" (RFC 8176)

A refusal raises `PasskeyRefused`, which spends the challenge and audits the reason (a sign counter that did
not increase as `passkey.clone_suspected`).

py_webauthn is imported by the functions that use it, not with this module: importing it loads every
attestation format (pyasn1 included), ~0.4 s of CPU that every process importing the app (each API worker,
the mail worker, the CLIs) paid at start, though most of them never run a ceremony.
"""

import hashlib
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, NoReturn

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.core.config import Settings
from app.core.context import RequestContext
from app.mail.outbox import enqueue
from app.passkeys import mails, repository
from app.passkeys.errors import (
    PasskeyAlreadyRegistered,
    PasskeyInvalid,
    PasskeyNotFound,
    PasskeyRefused,
    TooManyPasskeys,
)
from app.passkeys.models import Passkey
from app.users import repository as user_repository
from app.users.models import User

if TYPE_CHECKING:
    from webauthn.helpers.structs import (
        AuthenticationCredential,
        PublicKeyCredentialDescriptor,
        RegistrationCredential,
    )

log = logging.getLogger("pyauth.passkeys")

REGISTRATION: Final = "registration"
AUTHENTICATION: Final = "authentication"
CHALLENGE_BYTES: Final = 32
# Enough for a phone, a laptop and a few security keys; bounds the options' excludeCredentials list.
MAX_PASSKEYS_PER_USER: Final = 20


def _parse_errors() -> tuple[type[BaseException], ...]:
    """What a hostile credential can make py_webauthn's parsers raise besides its own errors (base64, CBOR,
    JSON, struct unpacking): every one is a refused answer (4xx), never a 500."""
    from webauthn.helpers.exceptions import WebAuthnException  # noqa: PLC0415 - imported late (module docstring)

    return (
        WebAuthnException,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
    )


@dataclass(frozen=True)
class VerifiedPasskey:
    """A verified assertion: whose passkey it was, which one, and how it counts as a method.

    `amr` (RFC 8176): `hwk` for a device-bound passkey (backup-ineligible, BE=0: the key cannot leave its
    hardware), `swk` for one that may be synced or exported (BE=1: a software-held copy can exist)."""

    user: User
    passkey: Passkey
    amr: str
    user_verified: bool


def _digest(challenge: bytes) -> bytes:
    return hashlib.sha256(challenge).digest()


def _user_handle(user: User) -> bytes:
    """The WebAuthn user handle (§14.6.1: no personal data): the account's UUID, 16 bytes."""
    return user.id.bytes


def _descriptors(passkeys: list[Passkey]) -> list["PublicKeyCredentialDescriptor"]:
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor  # noqa: PLC0415 - imported late (module docstring)

    return [
        PublicKeyCredentialDescriptor(
            id=p.credential_id, transports=[AuthenticatorTransport(t) for t in p.transports]
        )
        for p in passkeys
    ]


async def _new_challenge(
    db: AsyncSession,
    *,
    purpose: str,
    user: User | None,
    attempt: str | None,
    user_verification: str,
    settings: Settings,
    ctx: RequestContext,
) -> bytes:
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    await repository.add_challenge(
        db,
        challenge_hash=_digest(challenge),
        purpose=purpose,
        user_id=user.id if user is not None else None,
        attempt=attempt,
        user_verification=user_verification,
        now=ctx.now,
        expires_at=ctx.now + timedelta(seconds=settings.WEBAUTHN_CHALLENGE_TTL_SECONDS),
    )
    return challenge


def _challenge_of(client_data_json: bytes) -> bytes:
    from webauthn.helpers import parse_client_data_json  # noqa: PLC0415 - imported late (module docstring)

    return parse_client_data_json(client_data_json).challenge


# --- Registration (WebAuthn §7.1) ---


async def registration_options(
    db: AsyncSession, user: User, *, settings: Settings, ctx: RequestContext
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptionsJSON for `navigator.credentials.create()` (or
    `PublicKeyCredential.parseCreationOptionsFromJSON`): the user's passkeys excluded, a discoverable
    credential preferred (so it can sign in without a password later), user verification per the policy."""
    from webauthn import generate_registration_options  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers.options_to_json_dict import options_to_json_dict  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers.structs import (  # noqa: PLC0415 - imported late (module docstring)
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    existing = await repository.passkeys_of(db, user.id)
    if len(existing) >= MAX_PASSKEYS_PER_USER:
        raise TooManyPasskeys()
    user_verification = settings.WEBAUTHN_USER_VERIFICATION
    # Only the latest options can be answered: a user holds one registration challenge at most.
    await repository.discard_challenges_of(db, user.id, REGISTRATION)
    challenge = await _new_challenge(
        db,
        purpose=REGISTRATION,
        user=user,
        attempt=None,
        user_verification=user_verification,
        settings=settings,
        ctx=ctx,
    )
    options = generate_registration_options(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.webauthn_rp_name,
        user_id=_user_handle(user),
        user_name=user.email,
        user_display_name=user.display_name or user.email,
        challenge=challenge,
        timeout=settings.WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement(user_verification),
        ),
        exclude_credentials=_descriptors(existing),
    )
    return options_to_json_dict(options)


async def register(
    db: AsyncSession,
    user: User,
    *,
    name: str,
    credential: Mapping[str, Any],
    settings: Settings,
    ctx: RequestContext,
) -> Passkey:
    """Verify the browser's answer to `registration_options` (§7.1 steps 5-26) and store the passkey.

    The challenge (§7.1 step 8) must be one issued to this user for a registration, live and unanswered;
    origin (step 9), RP id hash (step 13), user presence and, when the policy requires it, verification
    (steps 14-15), and the public key's algorithm (step 17) are py_webauthn's checks. Attestation is
    `none`: pyauth trusts no authenticator model over another."""
    from webauthn.helpers import parse_registration_credential_json  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers.structs import CredentialDeviceType  # noqa: PLC0415 - imported late (module docstring)

    try:
        parsed = parse_registration_credential_json(dict(credential))
        challenge = _challenge_of(parsed.response.client_data_json)
    except _parse_errors() as exc:
        log.info("passkey registration refused: unreadable credential (%s)", type(exc).__name__)
        raise PasskeyInvalid() from None
    stored = await repository.consume_challenge(
        db,
        challenge_hash=_digest(challenge),
        purpose=REGISTRATION,
        user_id=user.id,
        attempt=None,
        now=ctx.now,
    )
    if stored is None:
        log.info("passkey registration refused: unknown, spent or expired challenge user=%s", user.id)
        raise PasskeyInvalid()
    verified = _verified_registration(parsed, challenge, stored.user_verification, settings)
    if await repository.count_passkeys(db, user.id) >= MAX_PASSKEYS_PER_USER:
        raise TooManyPasskeys()
    parsed_transports = parsed.response.transports or []
    passkey_id = await repository.insert_passkey(
        db,
        {
            "user_id": user.id,
            "credential_id": verified.credential_id,
            "public_key": verified.credential_public_key,
            "sign_count": verified.sign_count,
            "transports": sorted({t.value for t in parsed_transports}),
            "name": name,
            "aaguid": uuid.UUID(verified.aaguid),
            "backup_eligible": verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            "backed_up": verified.credential_backed_up,
            "created_at": ctx.now,
        },
    )
    if passkey_id is None:
        # §7.1 step 26: a credential id registered already (to this or another account) is refused.
        raise PasskeyAlreadyRegistered()
    passkey = await repository.passkey_of(db, user.id, passkey_id)
    assert passkey is not None
    await record(
        db,
        AuditEvent.PASSKEY_REGISTERED,
        ctx=ctx,
        user_id=user.id,
        details={"passkey_id": str(passkey.id), "name": name, "aaguid": str(passkey.aaguid)},
    )
    await _mail(db, user, mails.passkey_added(settings, user.locale, name), ctx)
    return passkey


def _verified_registration(
    parsed: "RegistrationCredential", challenge: bytes, user_verification: str, settings: Settings
) -> Any:
    from webauthn import verify_registration_response  # noqa: PLC0415 - imported late (module docstring)

    try:
        return verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=settings.webauthn_origins,
            require_user_verification=user_verification == "required",
        )
    except _parse_errors() as exc:
        log.info("passkey registration refused: %s", exc)
        raise PasskeyInvalid() from None


# --- Management ---


async def has_passkey(db: AsyncSession, user: User) -> bool:
    return await repository.has_passkey(db, user.id)


def passkey_enrolled(user_id: uuid.UUID | ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
    """Whether the user has a passkey, as a condition the second-factor methods select in one query."""
    return repository.passkey_exists(user_id)


async def list_passkeys(db: AsyncSession, user: User) -> list[Passkey]:
    return await repository.passkeys_of(db, user.id)


async def rename(
    db: AsyncSession, user: User, passkey_id: uuid.UUID, *, name: str, ctx: RequestContext
) -> Passkey:
    passkey = await repository.passkey_of(db, user.id, passkey_id)
    if passkey is None:
        raise PasskeyNotFound()
    passkey.name = name
    await db.flush()
    await record(
        db, AuditEvent.PASSKEY_RENAMED, ctx=ctx, user_id=user.id, details={"passkey_id": str(passkey.id)}
    )
    return passkey


async def remove(
    db: AsyncSession, user: User, passkey_id: uuid.UUID, *, settings: Settings, ctx: RequestContext
) -> None:
    passkey = await repository.delete_passkey(db, user.id, passkey_id)
    if passkey is None:
        raise PasskeyNotFound()
    await record(
        db,
        AuditEvent.PASSKEY_REMOVED,
        ctx=ctx,
        user_id=user.id,
        details={"passkey_id": str(passkey.id), "name": passkey.name},
    )
    await _mail(db, user, mails.passkey_removed(settings, user.locale, passkey.name), ctx)


async def remove_all(db: AsyncSession, user: User) -> int:
    """Delete every passkey of `user` (an admin's reset of their factors, which audits and mails it);
    how many there were."""
    return await repository.delete_passkeys_of(db, user.id)


async def _mail(db: AsyncSession, user: User, mail: mails.Mail, ctx: RequestContext) -> None:
    await enqueue(
        db, to=user.email, subject=mail.subject, body=mail.body, html=mail.html, now=ctx.now, kind=mail.kind
    )


# --- Authentication (WebAuthn §7.2) ---


async def authentication_options(
    db: AsyncSession,
    user: User | None,
    *,
    settings: Settings,
    ctx: RequestContext,
    attempt: str | None = None,
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON for `navigator.credentials.get()`.

    With `user` (a second factor after the password): allowCredentials lists that user's passkeys and user
    verification follows WEBAUTHN_USER_VERIFICATION. Without (passwordless): an empty allow list, so the
    authenticator offers its discoverable credentials, and user verification is required (the passkey is
    then the only factor, and UV makes it two). `attempt` binds the challenge to one sign-in attempt (e.g.
    the MFA token's id): `verify_assertion` must then be given the same."""
    from webauthn import generate_authentication_options  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers.options_to_json_dict import options_to_json_dict  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers.structs import UserVerificationRequirement  # noqa: PLC0415 - imported late (module docstring)

    user_verification = settings.WEBAUTHN_USER_VERIFICATION if user is not None else "required"
    allowed = await repository.passkeys_of(db, user.id) if user is not None else []
    challenge = await _new_challenge(
        db,
        purpose=AUTHENTICATION,
        user=user,
        attempt=attempt,
        user_verification=user_verification,
        settings=settings,
        ctx=ctx,
    )
    options = generate_authentication_options(
        rp_id=settings.webauthn_rp_id,
        challenge=challenge,
        timeout=settings.WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000,
        allow_credentials=_descriptors(allowed),
        user_verification=UserVerificationRequirement(user_verification),
    )
    return options_to_json_dict(options)


async def verify_assertion(
    db: AsyncSession,
    credential: Mapping[str, Any] | str,
    *,
    user: User | None,
    settings: Settings,
    ctx: RequestContext,
    attempt: str | None = None,
) -> VerifiedPasskey:
    """Verify the browser's answer to `authentication_options` (§7.2) and record the passkey's use.

    Checks, in the spec's order: the credential is one of `user`'s, or for a passwordless sign-in any
    registered one whose user handle names its owner (steps 5-6); the challenge is live, unanswered and
    was issued for this user and attempt (step 12, consumed here); origin (step 13), RP id hash (step 15),
    user presence (step 16) and user verification per the challenge's policy (step 17); backup
    eligibility unchanged since registration (step 19); the signature (step 20); the sign counter
    (step 21): when either the stored or the new count is non-zero, the new one must be greater, or the
    authenticator may be a clone, and the assertion is refused and audited as `passkey.clone_suspected`.
    Any refusal raises `PasskeyRefused`. `credential` is the AuthenticationResponseJSON, parsed or as
    its JSON text."""
    from webauthn import verify_authentication_response  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers import parse_authentication_credential_json  # noqa: PLC0415 - imported late (module docstring)
    from webauthn.helpers.structs import CredentialDeviceType  # noqa: PLC0415 - imported late (module docstring)

    def refused(
        reason: str, challenge: bytes | None, owner: uuid.UUID | None = None, **details: Any
    ) -> NoReturn:
        log.info("passkey assertion refused: %s user=%s", reason, owner or "-")
        raise PasskeyRefused(
            db=db, ctx=ctx, reason=reason, challenge=challenge, user_id=owner, details=details or None
        )

    try:
        # A string is the JSON text itself (as a form field carries it), parsed by py_webauthn.
        parsed: AuthenticationCredential = parse_authentication_credential_json(
            credential if isinstance(credential, str) else dict(credential)
        )
        challenge = _challenge_of(parsed.response.client_data_json)
    except _parse_errors():
        refused("unreadable", None, user.id if user is not None else None)
    passkey = await repository.by_credential_id(db, parsed.raw_id)
    if passkey is None or (user is not None and passkey.user_id != user.id):
        refused("unknown_credential", challenge, user.id if user is not None else None)
    handle = parsed.response.user_handle
    owner = user or await user_repository.get_by_id(db, passkey.user_id)
    if (
        owner is None
        or (handle is not None and handle != _user_handle(owner))
        or (user is None and not handle)
    ):
        refused("wrong_user", challenge, passkey.user_id)
    if not owner.is_active:
        refused("inactive", challenge, owner.id)
    stored = await repository.consume_challenge(
        db,
        challenge_hash=_digest(challenge),
        purpose=AUTHENTICATION,
        user_id=user.id if user is not None else None,
        attempt=attempt,
        now=ctx.now,
    )
    if stored is None:
        refused("challenge", challenge, owner.id)
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=settings.webauthn_origins,
            credential_public_key=passkey.public_key,
            # The counter is checked below, where a clone can be told from a malformed answer.
            credential_current_sign_count=0,
            require_user_verification=stored.user_verification == "required",
        )
    except _parse_errors():
        refused("verification", challenge, owner.id, passkey_id=str(passkey.id))
    # §7.2 step 19 (L3): backup eligibility is fixed when the credential is made; a change means another
    # authenticator, or a corrupted answer.
    now_eligible = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    if now_eligible != passkey.backup_eligible:
        refused("backup_eligibility", challenge, owner.id, passkey_id=str(passkey.id))
    new_count = verified.new_sign_count
    if (new_count or passkey.sign_count) and new_count <= passkey.sign_count:
        refused(
            "counter",
            challenge,
            owner.id,
            passkey_id=str(passkey.id),
            stored_count=passkey.sign_count,
            presented_count=new_count,
        )
    used = await repository.record_use(
        db,
        passkey.id,
        seen_count=passkey.sign_count,
        new_count=new_count,
        backed_up=verified.credential_backed_up,
        now=ctx.now,
    )
    if not used:
        # Another assertion of this passkey stored its counter meanwhile: this one's count is stale.
        refused("counter_race", challenge, owner.id, passkey_id=str(passkey.id))
    await db.refresh(passkey)
    return VerifiedPasskey(
        user=owner,
        passkey=passkey,
        amr="swk" if passkey.backup_eligible else "hwk",
        user_verified=verified.user_verified,
    )
