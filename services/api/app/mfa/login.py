"""The second step of a password login: the `mfa_token` the first step answers with, and the mfa grant's
completion of the login with one of the account's methods (`app.mfa.methods`), and the WebAuthn options a
passkey answers in that step.

The mfa_token is 256 random bits, stored as a SHA-256 digest, valid MFA_TOKEN_TTL_SECONDS and spent by the
login it completes (a conditional UPDATE: of two concurrent completions one wins). It is bound to the
account, to the client that passed the first step (another client's mfa grant is refused) and to the
device token that step presented (the finished login replaces it). Wrong second factors count on their own
per-account counter (`login_throttles` kind `mfa`) on the login schedule (LOGIN_FREE_ATTEMPTS, then a
doubling delay up to LOGIN_DELAY_MAX_SECONDS), and without the lock that sends a password guesser to a
reset: a reset would not help the owner here. Every failure is audited.

The hosted sign-in pages use the same tokens for their second page (`app.web`): a ticket of the pages is
bound to the built-in client and marked with `HOSTED_PAGES_MARK` among its scopes (a value with a space,
which no OAuth scope can be, RFC 6749 §3.3), so that it completes only a browser sign-in and the mfa
grant refuses it, and an API ticket never starts a browser session.
"""

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import audit_row, record
from app.auth.issuing import IssuedTokens, start_session_with_tokens
from app.auth.login.second_factor import MfaRequired
from app.auth.sessions import Authentication
from app.clients.models import OAuthClient
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import commit_before_refusing, each_statement_commits, execute_write
from app.core.errors import OAuthError
from app.core.opaque_tokens import digest, new_token
from app.keys.keyring import KeyRing
from app.mfa import repository
from app.mfa.errors import InvalidSecondFactor, SecondFactorThrottled
from app.mfa.methods import METHODS, SecondFactorMethod, account_and_methods
from app.mfa.models import MfaToken
from app.passkeys import service as passkeys
from app.ratelimit import devices
from app.ratelimit import service as ratelimit
from app.users.models import User

log = logging.getLogger("pyauth.mfa")

MFA_KIND = ratelimit.AttemptKind.MFA
HOSTED_PAGES_MARK = "pyauth hosted-pages"


async def issue_mfa_token(
    db: AsyncSession,
    required: MfaRequired,
    *,
    oauth_client: OAuthClient,
    scopes: Sequence[str],
    device_token: str | None,
    settings: Settings,
    ctx: RequestContext,
) -> NoReturn:
    """Store a new mfa_token for the login that `required` interrupted, put it in the answer, commit
    (the error answer rolls back) and raise `required`."""
    token = await store_mfa_token(
        db,
        required,
        client_id=oauth_client.client_id,
        scopes=scopes,
        device_token=device_token,
        settings=settings,
        ctx=ctx,
    )
    await commit_before_refusing(db)
    required.body_extra = {"mfa_token": token, "methods": required.methods}
    raise required


async def store_mfa_token(
    db: AsyncSession,
    required: MfaRequired,
    *,
    client_id: str,
    scopes: Sequence[str],
    device_token: str | None,
    settings: Settings,
    ctx: RequestContext,
) -> str:
    """Store and audit a new mfa_token for the login that `required` interrupted (one statement); answer
    the token."""
    token, token_hash = new_token()
    await repository.store_mfa_token(
        db,
        MfaToken(
            token_hash=token_hash,
            user_id=required.user.id,
            client_id=client_id,
            device_token_hash=digest(device_token) if device_token else None,
            amr=list(required.amr),
            scopes=list(scopes),
            created_at=ctx.now,
            expires_at=ctx.now + timedelta(seconds=settings.MFA_TOKEN_TTL_SECONDS),
        ),
        audit_row(AuditEvent.MFA_REQUIRED, ctx, {"methods": required.methods}),
        required.writes,
    )
    return token


def chosen_method(values: Mapping[str, str | None]) -> tuple[SecondFactorMethod, str]:
    """The one method whose field the request carries."""
    given = [(method, value) for method in METHODS if (value := values.get(method.field))]
    if len(given) != 1:
        fields = ", ".join(method.field for method in METHODS)
        raise OAuthError(f"Exactly one of {fields} is required with the mfa_token.")
    return given[0]


async def _refuse(
    db: AsyncSession, ctx: RequestContext, reason: str, *, user_id: uuid.UUID | None = None
) -> NoReturn:
    await record(db, AuditEvent.MFA_FAILED, ctx=ctx, user_id=user_id, reason=reason)
    await commit_before_refusing(db)
    log.info("second factor refused: %s user=%s", reason, user_id or "-")
    raise InvalidSecondFactor()


@dataclass(frozen=True)
class SecondStep:
    """A finished second step: the login's `Authentication` (with its new device token) and the ticket's
    client and scopes."""

    authentication: Authentication
    client_id: str
    scopes: list[str]


async def complete_login(
    db: AsyncSession,
    *,
    mfa_token: str,
    values: Mapping[str, str | None],
    oauth_client: OAuthClient,
    keyring: KeyRing,
    settings: Settings,
    ctx: RequestContext,
) -> IssuedTokens:
    """The mfa grant: check the mfa_token, then the second factor, then start the session and issue its
    tokens, whose `amr` is the first step's and the method's (e.g. `["pwd", "otp", "mfa"]`)."""
    method, value = chosen_method(values)
    step = await second_step(
        db,
        mfa_token=mfa_token,
        method=method,
        value=value,
        client_id=oauth_client.client_id,
        hosted_pages=False,
        settings=settings,
        ctx=ctx,
        defer_writes=True,  # sent with the session's statement
    )
    return await start_session_with_tokens(
        db,
        step.authentication,
        oauth_client=oauth_client,
        scopes=step.scopes,
        keyring=keyring,
        settings=settings,
        ctx=ctx,
    )


async def live_hosted_ticket(db: AsyncSession, mfa_token: str, now: datetime) -> MfaToken | None:
    """The hosted pages' live, unspent ticket of this token, or None."""
    ticket = await repository.live_mfa_token(db, digest(mfa_token), now)
    if ticket is None or HOSTED_PAGES_MARK not in ticket.scopes:
        return None
    return ticket


async def second_step(
    db: AsyncSession,
    *,
    mfa_token: str,
    method: SecondFactorMethod,
    value: str,
    client_id: str,
    hosted_pages: bool,
    settings: Settings,
    ctx: RequestContext,
    defer_writes: bool = False,
) -> SecondStep:
    """Check the mfa_token (its client, and whether it is the hosted pages'), count the attempt, check the
    factor, spend the token and answer the finished login; every refusal is audited and committed. With
    `defer_writes` the login's last writes (its failure counts cleared, its device token) are not sent but
    kept in the answer's `Authentication`, for the statement that starts its session to carry."""
    now = ctx.now
    token_hash = digest(mfa_token)
    # Up to the reservation's commit, each statement commits on its own: no BEGIN or COMMIT round trips.
    await each_statement_commits(db)
    found = await _live_ticket(db, token_hash, ctx)  # held to the end: the otp method reads its `totp`
    ticket, device = found.ticket, found.device
    if ticket.client_id != client_id or (HOSTED_PAGES_MARK in ticket.scopes) != hosted_pages:
        await _refuse(db, ctx, "mfa_token_of_another_client", user_id=ticket.user_id)
    user = await _active_account(db, found, ctx)
    await _reserve(db, user, settings=settings, ctx=ctx)
    verified = await method.verify(db, user, value, settings=settings, ctx=ctx, attempt=attempt_of(ticket))
    if verified is None:
        await _refuse(db, ctx, f"wrong_{method.name}", user_id=user.id)
    if not await repository.spend_mfa_token(db, token_hash, now):  # a concurrent completion won
        user_id = user.id
        await db.rollback()  # undo the method's acceptance: this login did not happen
        await _refuse(db, ctx, "invalid_mfa_token", user_id=user_id)
    replaces = device if device is not None and device.user_id == user.id else None
    device_token, device_stored = devices.replacement(user.id, settings=settings, now=now, replaces=replaces)
    writes = (ratelimit.failures_cleared(user.email, MFA_KIND, ratelimit.AttemptKind.LOGIN), device_stored)
    if not defer_writes:
        for write in writes:
            await execute_write(db, write)
    amr = list(dict.fromkeys([*ticket.amr, *verified.amr]))
    authentication = Authentication(
        user=user,
        amr=tuple(amr),
        auth_time=now,
        known_device=replaces is not None,
        device_token=device_token,
        writes=writes if defer_writes else (),
    )
    scopes = [scope for scope in ticket.scopes if scope != HOSTED_PAGES_MARK]
    return SecondStep(authentication, ticket.client_id, scopes)


def attempt_of(ticket: MfaToken) -> str:
    """The id a challenge issued for this login is bound to: its mfa_token's digest, never the token."""
    return ticket.token_hash.hex()


async def webauthn_options(
    db: AsyncSession, *, mfa_token: str, settings: Settings, ctx: RequestContext
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON for the second step of the login `mfa_token` belongs to: the
    account's passkeys allowed, the challenge bound to the account and to this mfa_token (an assertion
    answers only the login it was asked for). The token is not spent: the mfa grant spends it."""
    found = await _live_ticket(db, digest(mfa_token), ctx)
    user = await _active_account(db, found, ctx)
    if not await passkeys.has_passkey(db, user):
        await _refuse(db, ctx, "no_passkey", user_id=user.id)
    return await passkeys.authentication_options(
        db, user, settings=settings, ctx=ctx, attempt=attempt_of(found.ticket)
    )


async def _live_ticket(db: AsyncSession, token_hash: bytes, ctx: RequestContext) -> repository.LiveTicket:
    """The live ticket of this digest with its account and device token (one statement); refused
    (audited) if there is none."""
    found = await repository.live_ticket(db, token_hash, ctx.now)
    if found is None:
        await _refuse(db, ctx, "invalid_mfa_token")
    return found


async def _active_account(db: AsyncSession, found: repository.LiveTicket, ctx: RequestContext) -> User:
    """The ticket's account; refused (audited) if it is gone or disabled."""
    if found.user is None or not found.user.is_active:
        await _refuse(db, ctx, "inactive", user_id=found.ticket.user_id)
    return found.user


async def _reserve(db: AsyncSession, user: User, *, settings: Settings, ctx: RequestContext) -> None:
    """Count the attempt before the factor is checked; refuse without checking when the schedule says
    wait. The reservation is committed so that it stands whatever the request's outcome."""
    reservation = await ratelimit.reserve_attempt(
        db, user.email, settings=settings, now=ctx.now, kind=MFA_KIND, lock=False
    )
    if not reservation.granted:
        await record(db, AuditEvent.MFA_THROTTLED, ctx=ctx, user_id=user.id, reason="throttled")
        await commit_before_refusing(db)
        raise SecondFactorThrottled(headers=reservation.retry_after_header)
    await commit_before_refusing(db)


class MfaLogin:
    """`auth`'s `SecondFactors`: what the login step asks (`app.auth.login.second_factor`)."""

    async def account_and_methods(self, db: AsyncSession, email: str) -> tuple[User | None, list[str]]:
        return await account_and_methods(db, email)

    async def challenge(
        self,
        db: AsyncSession,
        required: MfaRequired,
        *,
        oauth_client: OAuthClient,
        scopes: Sequence[str],
        device_token: str | None,
        settings: Settings,
        ctx: RequestContext,
    ) -> NoReturn:
        await issue_mfa_token(
            db,
            required,
            oauth_client=oauth_client,
            scopes=scopes,
            device_token=device_token,
            settings=settings,
            ctx=ctx,
        )
