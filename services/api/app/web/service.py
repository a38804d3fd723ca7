"""What the hosted pages do: sign in through the same login pipeline as the API's password grant (the
same throttle and counters, enumeration safety and device tokens), start and end the browser SSO session.

For an account with a second factor the password step ends in `SecondStepNeeded`: an mfa_token of the
hosted pages (`app.mfa.login`) that the second page carries, completed by `complete_second_step` with the
same checks, throttle and audit as the mfa grant; the browser session then records every method in `amr`.

A passkey signs in on its own too (passwordless, `sign_in_with_passkey`): the assertion answers options
issued for nobody (`passwordless_options`), the authenticator names the account by its user handle, and
user verification is required, so the passkey proves two factors: what the user has (the key: `hwk`, or
`swk` for one that may be synced) and what the user knows or is (the PIN or biometric unlocking it:
`user`), hence `mfa` and the MFA acr (RFC 8176 §2). The account-state rules are the password step's.

Registration and forgot-password are the account lifecycle's own services (`app.account`), called as the
API calls them; only the sign-in and sign-out are the pages' own.
"""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.errors import EmailNotVerified
from app.auth.login.flow import LoginFlow, LoginRequest
from app.auth.login.pipeline import authenticate
from app.auth.login.second_factor import MfaRequired
from app.auth.sessions import Authentication
from app.clients.models import BUILTIN_CLIENT_ID
from app.core.config import Settings
from app.core.context import RequestContext
from app.metrics import instruments as metrics
from app.mfa import login as mfa_login
from app.mfa.methods import METHODS, enrolled_methods
from app.passkeys import service as passkeys
from app.passkeys.errors import PasskeyRefused
from app.passwords.hashing import PasswordHasher
from app.passwords.policy import normalize_password, refuse_oversized
from app.sso import service as browser_sessions
from app.sso.models import BrowserSession
from app.users import repository as user_repository
from app.users.emails import InvalidEmail, canonicalize_email
from app.users.models import User

log = logging.getLogger("pyauth.web")


@dataclass(frozen=True)
class SignedIn:
    authentication: Authentication
    browser_session: BrowserSession
    session_token: str  # for the cookie; only its digest is stored


@dataclass(frozen=True)
class SecondStepNeeded:
    """The password was right; the second page must carry `mfa_token` and offer `methods`."""

    mfa_token: str
    methods: list[str]


async def sign_in(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    device_token: str | None,
    replaces: BrowserSession | None,
    hasher: PasswordHasher,
    settings: Settings,
    ctx: RequestContext,
) -> SignedIn | SecondStepNeeded:
    """The login pipeline of the password grant, then a browser session instead of tokens. A session the
    browser already had ends (a new sign-in gets a new cookie: no session fixation). An account with a
    second factor gets no session yet: the answer is the hosted pages' mfa_token for the second page."""
    refuse_oversized(password, settings)  # before anything is counted or hashed
    try:
        canonical = canonicalize_email(email)
    except InvalidEmail:
        canonical = email.strip().lower()  # still throttled, like any address
    request = LoginRequest(email=canonical, password=normalize_password(password), device_token=device_token)
    try:
        authentication = await authenticate(LoginFlow(db, request, hasher=hasher, settings=settings, ctx=ctx))
    except MfaRequired as required:
        token = await mfa_login.store_mfa_token(
            db,
            required,
            client_id=BUILTIN_CLIENT_ID,
            scopes=[mfa_login.HOSTED_PAGES_MARK],
            device_token=device_token,
            settings=settings,
            ctx=ctx,
        )
        return SecondStepNeeded(token, required.methods)
    return await _start(db, authentication, replaces=replaces, settings=settings, ctx=ctx)


async def complete_second_step(
    db: AsyncSession,
    *,
    mfa_token: str,
    method_name: str,
    value: str,
    replaces: BrowserSession | None,
    settings: Settings,
    ctx: RequestContext,
) -> SignedIn:
    """The second page: the mfa grant's checks on the hosted pages' mfa_token, then the browser session."""
    method = next((m for m in METHODS if m.name == method_name), METHODS[0])
    step = await mfa_login.second_step(
        db,
        mfa_token=mfa_token,
        method=method,
        value=value,
        client_id=BUILTIN_CLIENT_ID,
        hosted_pages=True,
        settings=settings,
        ctx=ctx,
    )
    return await _start(db, step.authentication, replaces=replaces, settings=settings, ctx=ctx)


# RFC 8176 §2 "user": a user-presence test with verification (the PIN or biometric a UV passkey asks).
USER_VERIFIED_METHOD = "user"


async def passwordless_options(
    db: AsyncSession, *, settings: Settings, ctx: RequestContext
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON of a passwordless sign-in: issued for nobody, an empty
    allowCredentials (the authenticator offers its discoverable credentials), user verification required."""
    return await passkeys.authentication_options(db, None, settings=settings, ctx=ctx)


async def sign_in_with_passkey(
    db: AsyncSession,
    *,
    credential: str,
    replaces: BrowserSession | None,
    settings: Settings,
    ctx: RequestContext,
) -> SignedIn:
    """A passwordless sign-in: verify the assertion (a refusal raises `PasskeyRefused`, which audits it),
    apply the password step's account rules (an inactive account is refused by the verification; an
    unverified one is told so), then start the browser session like the password sign-in."""
    verified = await passkeys.verify_assertion(db, credential, user=None, settings=settings, ctx=ctx)
    user = verified.user
    if not user.is_verified and not settings.ALLOW_UNVERIFIED_LOGIN:
        await record(
            db,
            AuditEvent.LOGIN_FAILED,
            ctx=ctx,
            user_id=user.id,
            reason="unverified",
            details={"method": "passkey", "passkey_id": str(verified.passkey.id)},
        )
        metrics.count_login("unverified")
        log.info("passkey sign-in refused: unverified user=%s", user.id)
        raise EmailNotVerified()
    authentication = Authentication(
        user=user,
        amr=(verified.amr, USER_VERIFIED_METHOD, "mfa"),
        auth_time=ctx.now,
        known_device=False,
        device_token=None,
    )
    return await _start(
        db,
        authentication,
        replaces=replaces,
        settings=settings,
        ctx=ctx,
        details={"method": "passkey", "passkey_id": str(verified.passkey.id)},
    )


async def record_passkey_sign_in_refused(
    db: AsyncSession, refused: PasskeyRefused, ctx: RequestContext
) -> None:
    """The `login.failed` of a refused passwordless sign-in, beside the passkey's own audit of why
    (`passkey.assertion_failed`, written by the refusal)."""
    await record(
        db,
        AuditEvent.LOGIN_FAILED,
        ctx=ctx,
        user_id=refused.user_id,
        reason=refused.reason,
        details={"method": "passkey"},
    )


async def _start(
    db: AsyncSession,
    authentication: Authentication,
    *,
    replaces: BrowserSession | None,
    settings: Settings,
    ctx: RequestContext,
    details: Mapping[str, object] | None = None,
) -> SignedIn:
    if replaces is not None:
        await browser_sessions.end(db, replaces, reason=browser_sessions.REPLACED, now=ctx.now)
    browser_session, token = await browser_sessions.start(
        db,
        user_id=authentication.user.id,
        amr=authentication.amr,
        auth_time=authentication.auth_time,
        settings=settings,
        ctx=ctx,
    )
    # The audit trail's `session_id` names API sessions; a browser session is told apart in the details.
    details = {"browser_session": str(browser_session.id), **(details or {})}
    if authentication.known_device:
        details["known_device"] = True
    await record(db, AuditEvent.LOGIN_SUCCEEDED, ctx=ctx, user_id=authentication.user.id, details=details)
    metrics.count_login("succeeded")
    log.info("sign-in succeeded user=%s browser_session=%s", authentication.user.id, browser_session.id)
    return SignedIn(authentication, browser_session, token)


async def user_of(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    user = await user_repository.get_by_id(db, user_id)
    return user if user is not None and user.is_active else None


async def has_second_factor(db: AsyncSession, user: User) -> bool:
    """Whether signing `user` in on these pages asks for a second factor (a confirmed one is enrolled):
    what `acr_values` asking for MFA can be answered with (`app.oidc.endpoints`)."""
    return bool(await enrolled_methods(db, user.id))


async def current(
    db: AsyncSession, token: str | None, *, settings: Settings, ctx: RequestContext
) -> tuple[BrowserSession, User] | None:
    """The browser's live session and its user, or None (no cookie, ended, expired, idle, or the account
    was deactivated)."""
    browser_session = await browser_sessions.find_live(db, token, settings=settings, now=ctx.now)
    if browser_session is None:
        return None
    user = await user_repository.get_by_id(db, browser_session.user_id)
    if user is None or not user.is_active:
        return None
    return browser_session, user


async def sign_out(
    db: AsyncSession,
    browser_session: BrowserSession,
    *,
    ctx: RequestContext,
    details: Mapping[str, object] | None = None,
) -> bool:
    """End the browser session and audit it; `details` adds to the audit event's (the RP-initiated
    logout's client). False when it had ended already."""
    if not await browser_sessions.end(db, browser_session, reason=browser_sessions.SIGNED_OUT, now=ctx.now):
        return False
    await record(
        db,
        AuditEvent.LOGOUT,
        ctx=ctx,
        user_id=browser_session.user_id,
        details={"browser_session": str(browser_session.id), **(details or {})},
    )
    return True
