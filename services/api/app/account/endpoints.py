"""HTTP interface of the account lifecycle: verification, forgot/reset password, email change.

JSON endpoints for clients, and GET pages for the links in mails (they work without a frontend; point
VERIFY_EMAIL_URL / RESET_PASSWORD_URL / CONFIRM_EMAIL_CHANGE_URL at your own pages to replace them).
"""

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import pages, service
from app.account.schemas import Accepted, EmailChangeRequest, EmailRequest, PasswordReset, TokenConfirm
from app.auth.dependencies import CurrentAuth
from app.core.config import Settings
from app.core.database import SessionDep
from app.core.dependencies import ClientDep, ClockDep, HasherDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, PyauthError, error_responses
from app.ratelimit.dependencies import RateLimit
from app.users.schemas import UserRead

router = APIRouter(tags=["account"])

VERIFICATION_SENT = Accepted(detail="If an unverified account uses this address, a new link is on its way.")
RESET_SENT = Accepted(detail="If an account uses this address, a link to reset its password is on its way.")
# Every JSON endpoint here is rate limited and uses the database.
REQUEST_ERRORS = error_responses(*GUARD_ERRORS, 422, 429, UNAVAILABLE)


async def _answer_no_sooner_than(db: AsyncSession, started: float, settings: Settings) -> None:
    """Commit, then wait out the configured floor: a known address (token, mail, audit rows) and an unknown
    one (a single lookup) then take the same time to answer. The connection is back in the pool first."""
    await db.commit()
    remaining = settings.ENUMERATION_SAFE_RESPONSE_SECONDS - (time.perf_counter() - started)
    if remaining > 0:
        await asyncio.sleep(remaining)


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
    account exists."""
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
    responses=REQUEST_ERRORS,
)
async def confirm_verification(
    body: TokenConfirm, db: SessionDep, clock: ClockDep, client: ClientDep
) -> UserRead:
    user = await service.confirm_verification(db, token=body.token, now=clock.now(), client=client)
    return UserRead.model_validate(user)


@router.get(
    "/auth/verify",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def verify_link(
    db: SessionDep, clock: ClockDep, client: ClientDep, token: Annotated[str, Query(max_length=512)] = ""
) -> HTMLResponse:
    try:
        await service.confirm_verification(db, token=token, now=clock.now(), client=client)
    except PyauthError as error:
        return await pages.refused(db, "Email not verified", error)
    return pages.message("Email verified", "Your email address is verified. You can close this page.")


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
    exists."""
    started = time.perf_counter()
    await service.forgot_password(db, email=body.email, settings=settings, now=clock.now(), client=client)
    await _answer_no_sooner_than(db, started, settings)
    return RESET_SENT


@router.post(
    "/auth/password/reset",
    dependencies=[RateLimit("reset_password", "RATE_LIMIT_RESET_PASSWORD")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=REQUEST_ERRORS,
)
async def reset_password(
    body: PasswordReset,
    db: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
) -> None:
    """Set a new password with the mailed token. Every session of the account ends."""
    await service.reset_password(
        db,
        token=body.token,
        new_password=body.new_password,
        hasher=hasher,
        settings=settings,
        now=clock.now(),
        client=client,
    )


@router.get("/auth/password/reset", response_class=HTMLResponse, include_in_schema=False)
async def reset_page(token: Annotated[str, Query(max_length=512)] = "") -> HTMLResponse:
    return pages.reset_form(token)


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
    token: Annotated[str, Form(max_length=512)] = "",
    new_password: Annotated[str, Form(max_length=4096)] = "",
) -> HTMLResponse:
    try:
        await service.reset_password(
            db,
            token=token,
            new_password=new_password,
            hasher=hasher,
            settings=settings,
            now=clock.now(),
            client=client,
        )
    except PyauthError as error:
        return await pages.refused(db, "Password not changed", error)
    return pages.message("Password changed", "Your password is changed and every session was signed out.")


@router.post(
    "/users/me/email",
    dependencies=[
        RateLimit("verification", "RATE_LIMIT_VERIFICATION"),
        RateLimit("current_password", "RATE_LIMIT_CURRENT_PASSWORD"),
    ],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={**REQUEST_ERRORS, **error_responses(401, 403, 409)},
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
    """Requires the current password. The new address takes effect when its confirmation link is used."""
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
    responses={**REQUEST_ERRORS, **error_responses(409)},
)
async def confirm_email_change(
    body: TokenConfirm, db: SessionDep, settings: SettingsDep, clock: ClockDep, client: ClientDep
) -> UserRead:
    user = await service.confirm_email_change(
        db, token=body.token, settings=settings, now=clock.now(), client=client
    )
    return UserRead.model_validate(user)


@router.get(
    "/auth/email/confirm",
    dependencies=[RateLimit("verification", "RATE_LIMIT_VERIFICATION")],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def confirm_email_link(
    db: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    client: ClientDep,
    token: Annotated[str, Query(max_length=512)] = "",
) -> HTMLResponse:
    try:
        user = await service.confirm_email_change(
            db, token=token, settings=settings, now=clock.now(), client=client
        )
    except PyauthError as error:
        return await pages.refused(db, "Email not changed", error)
    return pages.message("Email changed", f"Your sign-in address is now {user.email}.")
