"""HTTP interface of the account lifecycle: verification, forgot/reset password, email change.

JSON endpoints for clients, and pages for the links in mails (they work without a frontend; point
VERIFY_EMAIL_URL / RESET_PASSWORD_URL / CONFIRM_EMAIL_CHANGE_URL / CANCEL_EMAIL_CHANGE_URL at your own
pages to replace them). A link's GET only shows a page with a button; the button's POST acts.

Every refused link is rolled back (it stays unspent) and audited, the refusal committed on its own.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Query, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import pages, service
from app.account.models import TokenPurpose
from app.account.pages import Pages, PagesDep
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
from app.core.database import SessionDep
from app.core.dependencies import ClientDep, ClientInfo, ClockDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, PyauthError, error_responses
from app.passwords.dependencies import HasherDep
from app.passwords.policy import NEW_PASSWORD_ERRORS, PasswordTooLong
from app.ratelimit.dependencies import RateLimit
from app.users.emails import InvalidEmail
from app.users.schemas import UserRead
from app.users.service import (
    CurrentPasswordLocked,
    CurrentPasswordThrottled,
    EmailAlreadyRegistered,
    InvalidCurrentPassword,
)

router = APIRouter(tags=["account"])
T = TypeVar("T")

VERIFICATION_SENT = Accepted(detail="If an unverified account uses this address, a new link is on its way.")
RESET_SENT = Accepted(detail="If an account uses this address, a link to reset its password is on its way.")
# Every JSON endpoint here is rate limited and uses the database.
REQUEST_ERRORS = error_responses(*GUARD_ERRORS, 422, 429, UNAVAILABLE)
# What redeeming a mailed link refuses.
LINK_ERRORS = (service.TokenInvalid, service.TokenUsed, service.TokenExpired, service.TokenSuperseded)
REDEEM_ERRORS = error_responses(*GUARD_ERRORS, 422, 429, UNAVAILABLE, raises=LINK_ERRORS)
# The GET of a mailed link shares its path with a JSON POST, so it is in the document too: the methods a
# path serves (its 405's and OPTIONS's `Allow`) are the methods the document lists for it.
HTML = {"text/html": {"schema": {"type": "string"}}}
PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "An HTML page.", "content": HTML},
    **error_responses(422, for_html_route=True),
}
LINK_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PAGE_RESPONSES,
    **error_responses(429, UNAVAILABLE, for_html_route=True),
    400: {
        "description": "The link is refused (invalid, used, expired or superseded): a page that says why.",
        "content": HTML,
    },
}


async def _answer_no_sooner_than(db: AsyncSession, started: float, settings: Settings) -> None:
    """Commit, then wait out the configured floor: a known address (token, mail, audit rows) and an unknown
    one (a single lookup) then take the same time to answer. The connection is back in the pool first."""
    await db.commit()
    remaining = settings.ENUMERATION_SAFE_RESPONSE_SECONDS - (time.perf_counter() - started)
    if remaining > 0:
        await asyncio.sleep(remaining)


async def _redeeming(
    db: AsyncSession,
    action: Callable[[], Awaitable[T]],
    *,
    token: str,
    purpose: TokenPurpose,
    clock: ClockDep,
    client: ClientInfo,
) -> T:
    """Run a link's action; on refusal roll it back, audit the refusal, and raise the error on."""
    try:
        return await action()
    except PyauthError as error:
        await service.refuse_link(db, error, token=token, purpose=purpose, now=clock.now(), client=client)
        raise


async def _link_page(
    db: AsyncSession,
    *,
    token: str,
    purpose: TokenPurpose,
    clock: ClockDep,
    client: ClientInfo,
    refused_title: str,
    page: Pages,
    ok: Callable[[], HTMLResponse],
) -> HTMLResponse:
    """The GET of a mailed link: the page with the button if the link would work, else why not. Reads
    only: a mail scanner's prefetch spends nothing."""
    try:
        await service.check_link(db, token=token, purpose=purpose, now=clock.now())
    except PyauthError as error:
        await service.refuse_link(db, error, token=token, purpose=purpose, now=clock.now(), client=client)
        return page.refused(refused_title, error)
    return ok()


async def _link_form(
    db: AsyncSession,
    action: Callable[[], Awaitable[HTMLResponse]],
    *,
    token: str,
    purpose: TokenPurpose,
    clock: ClockDep,
    client: ClientInfo,
    refused_title: str,
    page: Pages,
) -> HTMLResponse:
    """The POST of a link's button: act, or roll back, audit and say why not."""
    try:
        return await action()
    except PyauthError as error:
        await service.refuse_link(db, error, token=token, purpose=purpose, now=clock.now(), client=client)
        return page.refused(refused_title, error)


@router.post(
    "/auth/verify/request",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=REQUEST_ERRORS,
)
async def request_verification(
    body: EmailRequest, db: SessionDep, settings: SettingsDep, clock: ClockDep, client: ClientDep
) -> Accepted:
    """Mail a new verification link. The answer is the same, in content and time, whether or not the
    account exists, and whether or not a link went out (none does within MAIL_RECIPIENT_COOLDOWN_SECONDS
    of the last one)."""
    started = time.perf_counter()
    await service.request_verification(
        db, email=body.email, settings=settings, now=clock.now(), client=client
    )
    await _answer_no_sooner_than(db, started, settings)
    return VERIFICATION_SENT


@router.post(
    "/auth/verify/confirm",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_model=UserRead,
    responses=REDEEM_ERRORS,
)
async def confirm_verification(
    body: TokenConfirm, db: SessionDep, clock: ClockDep, client: ClientDep
) -> UserRead:
    user = await _redeeming(
        db,
        lambda: service.confirm_verification(db, token=body.token, now=clock.now(), client=client),
        token=body.token,
        purpose=TokenPurpose.VERIFY_EMAIL,
        clock=clock,
        client=client,
    )
    return UserRead.model_validate(user)


@router.get(
    "/auth/verify",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    responses=LINK_PAGE_RESPONSES,
)
async def verify_link(
    db: SessionDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Query(max_length=512)] = "",
) -> HTMLResponse:
    return await _link_page(
        db,
        token=token,
        purpose=TokenPurpose.VERIFY_EMAIL,
        clock=clock,
        client=client,
        refused_title=pages.NOT_VERIFIED,
        page=page,
        ok=lambda: page.confirm_button(pages.VERIFY_EMAIL, token=token),
    )


@router.post(
    "/auth/verify/form",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def verify_from_page(
    db: SessionDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Form(max_length=512)] = "",
) -> HTMLResponse:
    async def act() -> HTMLResponse:
        await service.confirm_verification(db, token=token, now=clock.now(), client=client)
        return page.message(pages.EMAIL_VERIFIED)

    return await _link_form(
        db,
        act,
        token=token,
        purpose=TokenPurpose.VERIFY_EMAIL,
        clock=clock,
        client=client,
        refused_title=pages.NOT_VERIFIED,
        page=page,
    )


@router.post(
    "/auth/password/forgot",
    dependencies=[RateLimit("forgot_password", "RATE_LIMIT_FORGOT_PASSWORD")],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=REQUEST_ERRORS,
)
async def forgot_password(
    body: EmailRequest, db: SessionDep, settings: SettingsDep, clock: ClockDep, client: ClientDep
) -> Accepted:
    """Mail a password-reset link. The answer is the same, in content and time, whether or not the account
    exists, and whether or not a link went out (none does within MAIL_RECIPIENT_COOLDOWN_SECONDS of the
    last one; that one stays valid)."""
    started = time.perf_counter()
    await service.forgot_password(db, email=body.email, settings=settings, now=clock.now(), client=client)
    await _answer_no_sooner_than(db, started, settings)
    return RESET_SENT


@router.post(
    "/auth/password/reset",
    dependencies=[RateLimit("reset_password", "RATE_LIMIT_RESET_PASSWORD")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        *GUARD_ERRORS, 422, 429, UNAVAILABLE, raises=(*LINK_ERRORS, *NEW_PASSWORD_ERRORS)
    ),
)
async def reset_password(
    body: PasswordReset,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
) -> None:
    """Set a new password with the mailed token. Every session and every pending account token of the
    account ends."""
    await _redeeming(
        db,
        lambda: service.reset_password(
            db,
            token=body.token,
            new_password=body.new_password,
            hasher=hasher,
            settings=settings,
            now=clock.now(),
            client=client,
        ),
        token=body.token,
        purpose=TokenPurpose.RESET_PASSWORD,
        clock=clock,
        client=client,
    )


@router.get("/auth/password/reset", response_class=HTMLResponse, responses=PAGE_RESPONSES)
async def reset_page(page: PagesDep, token: Annotated[str, Query(max_length=512)] = "") -> HTMLResponse:
    return page.reset_form(token)


@router.post(
    "/auth/password/reset/form",
    dependencies=[RateLimit("reset_password", "RATE_LIMIT_RESET_PASSWORD")],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def reset_from_page(
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Form(max_length=512)] = "",
    new_password: Annotated[str, Form(max_length=4096)] = "",
) -> HTMLResponse:
    async def act() -> HTMLResponse:
        await service.reset_password(
            db,
            token=token,
            new_password=new_password,
            hasher=hasher,
            settings=settings,
            now=clock.now(),
            client=client,
        )
        return page.message(pages.PASSWORD_CHANGED)

    return await _link_form(
        db,
        act,
        token=token,
        purpose=TokenPurpose.RESET_PASSWORD,
        clock=clock,
        client=client,
        refused_title=pages.PASSWORD_NOT_CHANGED,
        page=page,
    )


@router.post(
    "/users/me/email",
    dependencies=[
        RateLimit("verification", "RATE_LIMIT_VERIFICATION"),
        RateLimit("current_password", "RATE_LIMIT_CURRENT_PASSWORD"),
    ],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        429,
        UNAVAILABLE,
        raises=(
            InvalidCurrentPassword,
            CurrentPasswordLocked,
            CurrentPasswordThrottled,
            EmailAlreadyRegistered,
            InvalidEmail,
            PasswordTooLong,
        ),
    ),
)
async def request_email_change(
    body: EmailChangeRequest,
    auth: CurrentAuth,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
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
        now=clock.now(),
        client=client,
    )
    return Accepted(detail="A confirmation link was sent to the new address; the old address was told.")


@router.post(
    "/auth/email/confirm",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_model=UserRead,
    responses=error_responses(
        *GUARD_ERRORS, 422, 429, UNAVAILABLE, raises=(*LINK_ERRORS, EmailAlreadyRegistered)
    ),
)
async def confirm_email_change(
    body: TokenConfirm, db: SessionDep, settings: SettingsDep, clock: ClockDep, client: ClientDep
) -> UserRead:
    user = await _redeeming(
        db,
        lambda: service.confirm_email_change(
            db, token=body.token, settings=settings, now=clock.now(), client=client
        ),
        token=body.token,
        purpose=TokenPurpose.CHANGE_EMAIL,
        clock=clock,
        client=client,
    )
    return UserRead.model_validate(user)


@router.get(
    "/auth/email/confirm",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    responses=LINK_PAGE_RESPONSES,
)
async def confirm_email_link(
    db: SessionDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Query(max_length=512)] = "",
) -> HTMLResponse:
    return await _link_page(
        db,
        token=token,
        purpose=TokenPurpose.CHANGE_EMAIL,
        clock=clock,
        client=client,
        refused_title=pages.EMAIL_NOT_CHANGED,
        page=page,
        ok=lambda: page.confirm_button(pages.CONFIRM_EMAIL_CHANGE, token=token),
    )


@router.post(
    "/auth/email/confirm/form",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def confirm_email_from_page(
    db: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Form(max_length=512)] = "",
) -> HTMLResponse:
    async def act() -> HTMLResponse:
        user = await service.confirm_email_change(
            db, token=token, settings=settings, now=clock.now(), client=client
        )
        return page.message(pages.EMAIL_CHANGED, email=user.email)

    return await _link_form(
        db,
        act,
        token=token,
        purpose=TokenPurpose.CHANGE_EMAIL,
        clock=clock,
        client=client,
        refused_title=pages.EMAIL_NOT_CHANGED,
        page=page,
    )


CANCELLED_DETAIL = (
    "Every pending change of your email address is cancelled. If you did not ask for the change, someone "
    "knows your password: change it now."
)


@router.post(
    "/auth/email/cancel",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_model=EmailChangeCancelled,
    responses=REDEEM_ERRORS,
)
async def cancel_email_change(
    body: TokenConfirm, db: SessionDep, clock: ClockDep, client: ClientDep
) -> EmailChangeCancelled:
    """The link mailed to the old address: cancel every pending email change of the account."""
    cancelled = await _redeeming(
        db,
        lambda: service.cancel_email_change(db, token=body.token, now=clock.now(), client=client),
        token=body.token,
        purpose=TokenPurpose.CANCEL_EMAIL_CHANGE,
        clock=clock,
        client=client,
    )
    return EmailChangeCancelled(pending_changes_cancelled=cancelled, detail=CANCELLED_DETAIL)


@router.get(
    "/auth/email/cancel",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    responses=LINK_PAGE_RESPONSES,
)
async def cancel_email_link(
    db: SessionDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Query(max_length=512)] = "",
) -> HTMLResponse:
    return await _link_page(
        db,
        token=token,
        purpose=TokenPurpose.CANCEL_EMAIL_CHANGE,
        clock=clock,
        client=client,
        refused_title=pages.EMAIL_CHANGE_NOT_CANCELLED,
        page=page,
        ok=lambda: page.confirm_button(pages.CANCEL_EMAIL_CHANGE, token=token),
    )


@router.post(
    "/auth/email/cancel/form",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def cancel_email_from_page(
    db: SessionDep,
    clock: ClockDep,
    client: ClientDep,
    page: PagesDep,
    token: Annotated[str, Form(max_length=512)] = "",
) -> HTMLResponse:
    async def act() -> HTMLResponse:
        await service.cancel_email_change(db, token=token, now=clock.now(), client=client)
        return page.message(pages.EMAIL_CHANGE_CANCELLED)

    return await _link_form(
        db,
        act,
        token=token,
        purpose=TokenPurpose.CANCEL_EMAIL_CHANGE,
        clock=clock,
        client=client,
        refused_title=pages.EMAIL_CHANGE_NOT_CANCELLED,
        page=page,
    )
