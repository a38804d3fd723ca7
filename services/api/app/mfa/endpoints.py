"""`/users/me/mfa`: the signed-in user's second factors. Changes need a recent sign-in (403
`reauthentication_required`) and are mailed; secrets and recovery codes are answered once, `no-store`.

`/auth/mfa/webauthn/options`: the WebAuthn options of a login's second step, for its `mfa_token`."""

from typing import Any

from fastapi import APIRouter, Response, status

from app.auth.dependencies import CurrentAuth
from app.auth.errors import ReauthenticationRequired
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.mfa import login, service
from app.mfa.errors import (
    InvalidOtp,
    InvalidSecondFactor,
    MfaNotEnabled,
    MfaTokenRefused,
    TotpAlreadyEnabled,
    TotpNotPending,
)
from app.mfa.methods import enrolled_methods
from app.mfa.schemas import (
    FactorRead,
    FactorsRead,
    RecoveryCodesRead,
    TotpConfirm,
    TotpEnrolmentRead,
    WebAuthnOptionsRequest,
)
from app.ratelimit.dependencies import RateLimit
from app.ratelimit.service import TokenEndpointRateLimited

router = APIRouter(prefix="/users/me/mfa", tags=["mfa"])
login_router = APIRouter(prefix="/auth/mfa", tags=["mfa"])


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


@router.get("", response_model=FactorsRead, responses=error_responses(401, UNAVAILABLE))
async def list_factors(auth: CurrentAuth, db: SessionDep, response: Response) -> FactorsRead:
    found = await service.factors(db, auth.user)
    _no_store(response)
    factors = [FactorRead(type="totp", created_at=found.totp_confirmed_at)] if found.totp_confirmed_at else []
    return FactorsRead(
        factors=factors,
        recovery_codes_remaining=found.recovery_codes_remaining,
        methods=await enrolled_methods(db, auth.user.id),
    )


@router.post(
    "/totp",
    response_model=TotpEnrolmentRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, UNAVAILABLE, raises=(ReauthenticationRequired, TotpAlreadyEnabled)),
)
async def enrol_totp(
    auth: CurrentAuth, db: SessionDep, settings: SettingsDep, ctx: ContextDep, response: Response
) -> TotpEnrolmentRead:
    enrolment = await service.enrol_totp(db, auth.user, auth_time=auth.auth_time, settings=settings, ctx=ctx)
    _no_store(response)
    return TotpEnrolmentRead(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


@router.post(
    "/totp/confirm",
    response_model=RecoveryCodesRead,
    responses=error_responses(
        *GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(ReauthenticationRequired, TotpNotPending, InvalidOtp)
    ),
)
async def confirm_totp(
    body: TotpConfirm,
    auth: CurrentAuth,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    response: Response,
) -> RecoveryCodesRead:
    codes = await service.confirm_totp(
        db, auth.user, body.code, auth_time=auth.auth_time, settings=settings, ctx=ctx
    )
    _no_store(response)
    return RecoveryCodesRead(recovery_codes=codes)


@router.delete(
    "/totp",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, UNAVAILABLE, raises=(ReauthenticationRequired, MfaNotEnabled)),
)
async def remove_totp(auth: CurrentAuth, db: SessionDep, settings: SettingsDep, ctx: ContextDep) -> Response:
    await service.remove_totp(db, auth.user, auth_time=auth.auth_time, settings=settings, ctx=ctx)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/recovery-codes",
    response_model=RecoveryCodesRead,
    responses=error_responses(401, UNAVAILABLE, raises=(ReauthenticationRequired, MfaNotEnabled)),
)
async def regenerate_recovery_codes(
    auth: CurrentAuth, db: SessionDep, settings: SettingsDep, ctx: ContextDep, response: Response
) -> RecoveryCodesRead:
    codes = await service.regenerate_recovery_codes(
        db, auth.user, auth_time=auth.auth_time, settings=settings, ctx=ctx
    )
    _no_store(response)
    return RecoveryCodesRead(recovery_codes=codes)


@login_router.post(
    "/webauthn/options",
    # Counted like the token endpoint it precedes: each call writes a challenge row.
    dependencies=[RateLimit("mfa_webauthn_options", "RATE_LIMIT_TOKEN", TokenEndpointRateLimited)],
    responses=error_responses(
        *GUARD_ERRORS, 422, UNAVAILABLE, raises=(MfaTokenRefused, TokenEndpointRateLimited)
    ),
)
async def webauthn_options(
    body: WebAuthnOptionsRequest, db: SessionDep, settings: SettingsDep, ctx: ContextDep, response: Response
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptionsJSON (W3C WebAuthn L3 §5.5) for `navigator.credentials.get()`,
    for the login whose `mfa_required` answer gave `mfa_token`. The assertion goes to the mfa grant in the
    `webauthn` field with the same `mfa_token`; its challenge answers only that login, once, within
    WEBAUTHN_CHALLENGE_TTL_SECONDS. An unknown, spent or expired token, or an account without a passkey,
    is `invalid_grant`."""
    _no_store(response)
    try:
        return await login.webauthn_options(db, mfa_token=body.mfa_token, settings=settings, ctx=ctx)
    except InvalidSecondFactor:  # refused and audited (committed) already; answered in the API's body
        raise MfaTokenRefused() from None
