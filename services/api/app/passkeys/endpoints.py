"""HTTP interface of the signed-in user's passkeys: `/users/me/passkeys`.

Enrolment is two calls: `POST …/registration/options` gives the options for
`navigator.credentials.create()`, and `POST /users/me/passkeys` sends back its answer with a name.
Enrolling and removing need a recent sign-in (MFA_REAUTH_SECONDS) and mail the user; listing and renaming
need only a valid access token. Another user's passkey is a 404, as a missing one is.
"""

import uuid
from typing import Any

from fastapi import APIRouter, Response

from app.auth.dependencies import CurrentAuth
from app.auth.errors import ReauthenticationRequired
from app.core.dependencies import ContextDep, SessionDep, SettingsDep
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses
from app.passkeys import service
from app.passkeys.dependencies import RecentAuth
from app.passkeys.errors import (
    PasskeyAlreadyRegistered,
    PasskeyInvalid,
    PasskeyNotFound,
    TooManyPasskeys,
)
from app.passkeys.schemas import PasskeyCreate, PasskeyRead, PasskeyUpdate

router = APIRouter(prefix="/users/me/passkeys", tags=["passkeys"])


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


@router.post(
    "/registration/options",
    responses=error_responses(
        *GUARD_ERRORS, 401, UNAVAILABLE, raises=(ReauthenticationRequired, TooManyPasskeys)
    ),
)
async def registration_options(
    auth: RecentAuth, db: SessionDep, settings: SettingsDep, ctx: ContextDep, response: Response
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptionsJSON (W3C WebAuthn L3 §5.4) for `navigator.credentials.create()`,
    e.g. through `PublicKeyCredential.parseCreationOptionsFromJSON()`. Its challenge can be answered once,
    within WEBAUTHN_CHALLENGE_TTL_SECONDS."""
    _no_store(response)
    return await service.registration_options(db, auth.user, settings=settings, ctx=ctx)


@router.post(
    "",
    status_code=201,
    response_model=PasskeyRead,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        UNAVAILABLE,
        raises=(ReauthenticationRequired, PasskeyInvalid, PasskeyAlreadyRegistered, TooManyPasskeys),
    ),
)
async def add_passkey(
    body: PasskeyCreate,
    auth: RecentAuth,
    db: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    response: Response,
) -> PasskeyRead:
    """Verify the answer to the latest registration options (origin, RP id, challenge, user presence and
    verification) and store the passkey. The user is mailed."""
    passkey = await service.register(
        db, auth.user, name=body.name, credential=body.credential, settings=settings, ctx=ctx
    )
    _no_store(response)
    return PasskeyRead.model_validate(passkey)


@router.get("", response_model=list[PasskeyRead], responses=error_responses(401, UNAVAILABLE))
async def list_passkeys(auth: CurrentAuth, db: SessionDep, response: Response) -> list[PasskeyRead]:
    _no_store(response)
    return [PasskeyRead.model_validate(p) for p in await service.list_passkeys(db, auth.user)]


@router.patch(
    "/{passkey_id}",
    response_model=PasskeyRead,
    responses=error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(PasskeyNotFound,)),
)
async def rename_passkey(
    passkey_id: uuid.UUID,
    body: PasskeyUpdate,
    auth: CurrentAuth,
    db: SessionDep,
    ctx: ContextDep,
    response: Response,
) -> PasskeyRead:
    passkey = await service.rename(db, auth.user, passkey_id, name=body.name, ctx=ctx)
    _no_store(response)
    return PasskeyRead.model_validate(passkey)


@router.delete(
    "/{passkey_id}",
    status_code=204,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(ReauthenticationRequired, PasskeyNotFound)),
)
async def remove_passkey(
    passkey_id: uuid.UUID, auth: RecentAuth, db: SessionDep, settings: SettingsDep, ctx: ContextDep
) -> Response:
    """Remove the passkey; it no longer signs in. The user is mailed."""
    await service.remove(db, auth.user, passkey_id, settings=settings, ctx=ctx)
    return Response(status_code=204)
