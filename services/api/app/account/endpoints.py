"""HTTP interface of the account lifecycle: verification, forgot/reset password, email change, and the
signed-in user's password change.

JSON endpoints for clients, and pages for the links in mails (they work without a frontend; point
VERIFY_EMAIL_URL / RESET_PASSWORD_URL / CONFIRM_EMAIL_CHANGE_URL / CANCEL_EMAIL_CHANGE_URL at your own
pages to replace them). A link's GET only shows a page with a button; the button's POST acts (the page
and form routes come from `app.account.links`).

Every refused link raises `LinkRefused`: the request is rolled back (the link stays unspent) and the
refusal audited and committed on its own.
"""

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Form, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import pages, service
from app.account.current_password import CURRENT_PASSWORD_ERRORS
from app.account.links import (
    PAGE_RESPONSES,
    Action,
    FormToken,
    MailedLink,
    QueryToken,
    add_link_form,
    add_link_page,
    redeeming,
)
from app.account.models import TokenPurpose
from app.account.pages import PagesDep
from app.account.password_change import change_password as change_own_password
from app.account.schemas import (
    Accepted,
    EmailChangeCancelled,
    EmailChangeRequest,
    EmailRequest,
    PasswordReset,
    TokenConfirm,
)
from app.auth.dependencies import CurrentAuth
from app.core.config import Settings
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.passwords.dependencies import HasherDep
from app.passwords.policy import NEW_PASSWORD_ERRORS, PasswordTooLong
from app.ratelimit.dependencies import RateLimit
from app.users.emails import InvalidEmail
from app.users.schemas import PasswordChange, UserRead

router = APIRouter(tags=["account"])
# The signed-in user's own password lives under /users/me, documented with the user's operations.
own_account_router = APIRouter(prefix="/users", tags=["users"])

VERIFICATION_SENT = Accepted(detail="If an unverified account uses this address, a new link is on its way.")
RESET_SENT = Accepted(detail="If an account uses this address, a link to reset its password is on its way.")
# Every JSON endpoint here is rate limited and uses the database.
REQUEST_ERRORS = error_responses(*GUARD_ERRORS, 422, 429, UNAVAILABLE)
# What redeeming a mailed link refuses.
LINK_ERRORS = (service.TokenInvalid, service.TokenUsed, service.TokenExpired, service.TokenSuperseded)
REDEEM_ERRORS = error_responses(*GUARD_ERRORS, 422, 429, UNAVAILABLE, raises=LINK_ERRORS)

VERIFICATION_LIMIT = RateLimit("verification", "RATE_LIMIT_VERIFICATION")
RESET_LIMIT = RateLimit("reset_password", "RATE_LIMIT_RESET_PASSWORD")
VERIFY_LINK = MailedLink(TokenPurpose.VERIFY_EMAIL, pages.NOT_VERIFIED, VERIFICATION_LIMIT)
RESET_LINK = MailedLink(TokenPurpose.RESET_PASSWORD, pages.PASSWORD_NOT_CHANGED, RESET_LIMIT)
CONFIRM_EMAIL_LINK = MailedLink(TokenPurpose.CHANGE_EMAIL, pages.EMAIL_NOT_CHANGED, VERIFICATION_LIMIT)
CANCEL_EMAIL_LINK = MailedLink(
    TokenPurpose.CANCEL_EMAIL_CHANGE, pages.EMAIL_CHANGE_NOT_CANCELLED, VERIFICATION_LIMIT
)


async def _answer_no_sooner_than(db: AsyncSession, started: float, settings: Settings) -> None:
    """Commit, then wait out the configured floor: a known address (token, mail, audit rows) and an unknown
    one (a single lookup) then take the same time to answer. The connection is back in the pool first."""
    await db.commit()
    remaining = settings.ENUMERATION_SAFE_RESPONSE_SECONDS - (time.perf_counter() - started)
    if remaining > 0:
        await asyncio.sleep(remaining)


@router.post(
    "/auth/verify/request",
    dependencies=[VERIFICATION_LIMIT],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=REQUEST_ERRORS,
)
async def request_verification(
    body: EmailRequest, db: SessionDep, settings: SettingsDep, ctx: ContextDep
) -> Accepted:
    """Mail a new verification link. The answer is the same, in content and time, whether or not the
    account exists, and whether or not a link went out (none does within MAIL_RECIPIENT_COOLDOWN_SECONDS
    of the last one)."""
    started = time.perf_counter()
    await service.request_verification(db, email=body.email, settings=settings, ctx=ctx)
    await _answer_no_sooner_than(db, started, settings)
    return VERIFICATION_SENT


@router.post(
    "/auth/verify/confirm",
    dependencies=[VERIFICATION_LIMIT],
    response_model=UserRead,
    responses=REDEEM_ERRORS,
)
async def confirm_verification(body: TokenConfirm, db: SessionDep, ctx: ContextDep) -> UserRead:
    user = await redeeming(
        db,
        service.confirm_verification(db, token=body.token, ctx=ctx),
        token=body.token,
        purpose=TokenPurpose.VERIFY_EMAIL,
        ctx=ctx,
    )
    return UserRead.model_validate(user)


def _verify(db: SessionDep, ctx: ContextDep, page: PagesDep, token: FormToken = "") -> Action:
    async def act() -> HTMLResponse:
        await service.confirm_verification(db, token=token, ctx=ctx)
        return page.message(pages.EMAIL_VERIFIED)

    return act


add_link_page(router, "/auth/verify", VERIFY_LINK, pages.VERIFY_EMAIL, name="verify_link")
add_link_form(router, "/auth/verify/form", VERIFY_LINK, _verify, name="verify_from_page")


@router.post(
    "/auth/password/forgot",
    dependencies=[RateLimit("forgot_password", "RATE_LIMIT_FORGOT_PASSWORD")],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=REQUEST_ERRORS,
)
async def forgot_password(
    body: EmailRequest, db: SessionDep, settings: SettingsDep, ctx: ContextDep
) -> Accepted:
    """Mail a password-reset link. The answer is the same, in content and time, whether or not the account
    exists, and whether or not a link went out (none does within MAIL_RECIPIENT_COOLDOWN_SECONDS of the
    last one; that one stays valid)."""
    started = time.perf_counter()
    await service.forgot_password(db, email=body.email, settings=settings, ctx=ctx)
    await _answer_no_sooner_than(db, started, settings)
    return RESET_SENT


@router.post(
    "/auth/password/reset",
    dependencies=[RESET_LIMIT],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        *GUARD_ERRORS, 422, 429, UNAVAILABLE, raises=(*LINK_ERRORS, *NEW_PASSWORD_ERRORS)
    ),
)
async def reset_password(
    body: PasswordReset, db: SessionDep, hasher: HasherDep, settings: SettingsDep, ctx: ContextDep
) -> None:
    """Set a new password with the mailed token. Every session and every pending account token of the
    account ends."""
    await redeeming(
        db,
        service.reset_password(
            db, token=body.token, new_password=body.new_password, hasher=hasher, settings=settings, ctx=ctx
        ),
        token=body.token,
        purpose=TokenPurpose.RESET_PASSWORD,
        ctx=ctx,
    )


@router.get("/auth/password/reset", response_class=HTMLResponse, responses=PAGE_RESPONSES)
async def reset_page(page: PagesDep, token: QueryToken = "") -> HTMLResponse:
    return page.reset_form(token)


def _reset(
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    ctx: ContextDep,
    page: PagesDep,
    token: FormToken = "",
    new_password: Annotated[str, Form(max_length=4096)] = "",
) -> Action:
    async def act() -> HTMLResponse:
        await service.reset_password(
            db, token=token, new_password=new_password, hasher=hasher, settings=settings, ctx=ctx
        )
        return page.message(pages.PASSWORD_CHANGED)

    return act


add_link_form(router, "/auth/password/reset/form", RESET_LINK, _reset, name="reset_from_page")


@router.post(
    "/users/me/email",
    dependencies=[VERIFICATION_LIMIT, RateLimit("current_password", "RATE_LIMIT_CURRENT_PASSWORD")],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        429,
        UNAVAILABLE,
        raises=(*CURRENT_PASSWORD_ERRORS, service.EmailAlreadyRegistered, InvalidEmail, PasswordTooLong),
    ),
)
async def request_email_change(
    body: EmailChangeRequest,
    auth: CurrentAuth,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    ctx: ContextDep,
) -> Accepted:
    """Requires the current password. The new address takes effect when its confirmation link is used;
    the old address is told, with a link that cancels the change."""
    await service.request_email_change(
        db,
        user=auth.user,
        new_email=body.new_email,
        current_password=body.current_password,
        hasher=hasher,
        settings=settings,
        ctx=ctx,
    )
    return Accepted(detail="A confirmation link was sent to the new address; the old address was told.")


@router.post(
    "/auth/email/confirm",
    dependencies=[VERIFICATION_LIMIT],
    response_model=UserRead,
    responses=error_responses(
        *GUARD_ERRORS, 422, 429, UNAVAILABLE, raises=(*LINK_ERRORS, service.EmailAlreadyRegistered)
    ),
)
async def confirm_email_change(
    body: TokenConfirm, db: SessionDep, settings: SettingsDep, ctx: ContextDep
) -> UserRead:
    user = await redeeming(
        db,
        service.confirm_email_change(db, token=body.token, settings=settings, ctx=ctx),
        token=body.token,
        purpose=TokenPurpose.CHANGE_EMAIL,
        ctx=ctx,
    )
    return UserRead.model_validate(user)


def _confirm_email(
    db: SessionDep, settings: SettingsDep, ctx: ContextDep, page: PagesDep, token: FormToken = ""
) -> Action:
    async def act() -> HTMLResponse:
        user = await service.confirm_email_change(db, token=token, settings=settings, ctx=ctx)
        return page.message(pages.EMAIL_CHANGED, email=user.email)

    return act


add_link_page(
    router, "/auth/email/confirm", CONFIRM_EMAIL_LINK, pages.CONFIRM_EMAIL_CHANGE, name="confirm_email_link"
)
add_link_form(
    router, "/auth/email/confirm/form", CONFIRM_EMAIL_LINK, _confirm_email, name="confirm_email_from_page"
)

CANCELLED_DETAIL = (
    "Every pending change of your email address is cancelled. If you did not ask for the change, someone "
    "knows your password: change it now."
)


@router.post(
    "/auth/email/cancel",
    dependencies=[VERIFICATION_LIMIT],
    response_model=EmailChangeCancelled,
    responses=REDEEM_ERRORS,
)
async def cancel_email_change(body: TokenConfirm, db: SessionDep, ctx: ContextDep) -> EmailChangeCancelled:
    """The link mailed to the old address: cancel every pending email change of the account."""
    cancelled = await redeeming(
        db,
        service.cancel_email_change(db, token=body.token, ctx=ctx),
        token=body.token,
        purpose=TokenPurpose.CANCEL_EMAIL_CHANGE,
        ctx=ctx,
    )
    return EmailChangeCancelled(pending_changes_cancelled=cancelled, detail=CANCELLED_DETAIL)


def _cancel_email(db: SessionDep, ctx: ContextDep, page: PagesDep, token: FormToken = "") -> Action:
    async def act() -> HTMLResponse:
        await service.cancel_email_change(db, token=token, ctx=ctx)
        return page.message(pages.EMAIL_CHANGE_CANCELLED)

    return act


add_link_page(
    router, "/auth/email/cancel", CANCEL_EMAIL_LINK, pages.CANCEL_EMAIL_CHANGE, name="cancel_email_link"
)
add_link_form(
    router, "/auth/email/cancel/form", CANCEL_EMAIL_LINK, _cancel_email, name="cancel_email_from_page"
)


@own_account_router.post(
    "/me/password",
    dependencies=[RateLimit("current_password", "RATE_LIMIT_CURRENT_PASSWORD")],
    status_code=204,
    responses=error_responses(
        *GUARD_ERRORS, 401, 422, 429, UNAVAILABLE, raises=(*CURRENT_PASSWORD_ERRORS, *NEW_PASSWORD_ERRORS)
    ),
)
async def change_password(
    auth: CurrentAuth,
    body: PasswordChange,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    ctx: ContextDep,
) -> Response:
    """Requires the current password, whose checks are throttled per account (429 with Retry-After; 403
    `password_reset_required` after LOGIN_MAX_FAILURES) and audited. Every other session of the user
    ends; this one stays."""
    await change_own_password(
        db,
        user=auth.user,
        current_session_id=auth.session.id,
        current_password=body.current_password,
        new_password=body.new_password,
        hasher=hasher,
        settings=settings,
        ctx=ctx,
    )
    return Response(status_code=204)
