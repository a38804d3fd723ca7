"""HTTP interface of the client registry: `/admin/clients`, for callers holding the admin role (403
otherwise), like `/admin/users`. Responses carry `Cache-Control: no-store`: a new secret is in one.

A confidential client's secret is shown once: in the answer to its creation and to each rotation.
Rotation (`POST /admin/clients/{client_id}/secret`) adds a new secret and keeps the previous one working
for CLIENT_SECRET_ROTATION_OVERLAP_SECONDS (default one day), so the client's deployments can switch
without downtime; `DELETE /admin/clients/{client_id}/secret/previous` ends it sooner.
"""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from app.auth.dependencies import CurrentAdmin
from app.auth.errors import ADMIN_GUARD
from app.auth.grants.registry import GRANTS
from app.clients import service
from app.clients.models import BUILTIN_CLIENT_ID, MAX_CLIENT_ID_LENGTH, ClientType
from app.clients.redirect_uris import InvalidRedirectUri
from app.clients.schemas import (
    ClientCreate,
    ClientCreated,
    ClientPage,
    ClientRead,
    ClientUpdate,
    SecretRead,
    SecretRotated,
)
from app.clients.service import (
    BuiltInClientProtected,
    ClientChange,
    ClientNotFound,
    ClientWithSecrets,
    InvalidClientMetadata,
    NoPreviousSecret,
    PublicClientHasNoSecret,
)
from app.core.dependencies import ClockDep, ContextDep, SessionDep, SettingsDep, no_store
from app.core.errors import GUARD_ERRORS, UNAVAILABLE, error_responses

router = APIRouter(prefix="/admin/clients", tags=["admin"], dependencies=[Depends(no_store)])

ClientId = Annotated[str, Path(max_length=MAX_CLIENT_ID_LENGTH)]


def _change(admin: CurrentAdmin, ctx: ContextDep) -> ClientChange:
    return ClientChange(ctx=ctx, actor_id=admin.user.id, session_id=admin.session.id)


Change = Annotated[ClientChange, Depends(_change)]


def client_read(found: ClientWithSecrets) -> ClientRead:
    return ClientRead.model_validate(client_fields(found))


def client_fields(found: ClientWithSecrets) -> dict[str, object]:
    """The fields of a `ClientRead` (or `ClientCreated`, with the secret added)."""
    client = found.client
    confidential = client.client_type == ClientType.CONFIDENTIAL
    return {
        "client_id": client.client_id,
        "name": client.name,
        "type": client.client_type,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scopes": client.scopes,
        "first_party": client.first_party,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "access_token_audience": client.access_token_audience,
        "access_token_ttl_seconds": client.access_token_ttl_seconds,
        "refresh_token_ttl_seconds": client.refresh_token_ttl_seconds,
        "disabled": client.is_disabled,
        "built_in": client.client_id == BUILTIN_CLIENT_ID,
        "token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post"]
        if confidential
        else ["none"],
        "secrets": [SecretRead(created_at=s.created_at, expires_at=s.expires_at) for s in found.secrets],
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        UNAVAILABLE,
        raises=(*ADMIN_GUARD, InvalidRedirectUri, InvalidClientMetadata),
    ),
)
async def create_client(body: ClientCreate, change: Change, db: SessionDep) -> ClientCreated:
    """Register a client. A confidential client's `client_secret` is in this answer and never again:
    store it now. New clients get `authorization_code` and `refresh_token` unless `grant_types` says
    otherwise; the password grant only when listed."""
    _refuse_unserved_grant_types(body.grant_types)
    found, secret = await service.create_client(db, body, change)
    return ClientCreated.model_validate({**client_fields(found), "client_secret": secret})


@router.get(
    "", response_model=ClientPage, responses=error_responses(401, 422, UNAVAILABLE, raises=ADMIN_GUARD)
)
async def list_clients(
    _: CurrentAdmin,
    db: SessionDep,
    clock: ClockDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ClientPage:
    """Clients, newest first, with the built-in one among them."""
    found, total = await service.list_clients(db, limit=limit, offset=offset, now=clock.now())
    return ClientPage(items=[client_read(f) for f in found], total=total, limit=limit, offset=offset)


@router.get(
    "/{client_id}",
    response_model=ClientRead,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, ClientNotFound)),
)
async def get_client(client_id: ClientId, _: CurrentAdmin, db: SessionDep, clock: ClockDep) -> ClientRead:
    return client_read(await service.get_client(db, client_id, now=clock.now()))


@router.patch(
    "/{client_id}",
    response_model=ClientRead,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        UNAVAILABLE,
        raises=(*ADMIN_GUARD, ClientNotFound, InvalidRedirectUri, InvalidClientMetadata),
    ),
)
async def update_client(
    client_id: ClientId, body: ClientUpdate, change: Change, db: SessionDep
) -> ClientRead:
    """Change the fields sent. `disabled: true` refuses the client's token requests, refreshes included,
    from now on (`invalid_client`)."""
    _refuse_unserved_grant_types(body.grant_types or [])
    return client_read(await service.update_client(db, client_id, body, change))


@router.delete(
    "/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(
        401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, ClientNotFound, BuiltInClientProtected)
    ),
)
async def delete_client(client_id: ClientId, change: Change, db: SessionDep) -> None:
    """Delete the client, its secrets and its sessions: its refresh and access tokens stop working at
    once. The built-in client cannot be deleted (409)."""
    await service.delete_client(db, client_id, change)


@router.post(
    "/{client_id}/secret",
    response_model=SecretRotated,
    responses=error_responses(
        *GUARD_ERRORS,
        401,
        422,
        UNAVAILABLE,
        raises=(*ADMIN_GUARD, ClientNotFound, PublicClientHasNoSecret),
    ),
)
async def rotate_client_secret(
    client_id: ClientId, change: Change, db: SessionDep, settings: SettingsDep
) -> SecretRotated:
    """A new secret, shown this once. The previous one keeps working for
    CLIENT_SECRET_ROTATION_OVERLAP_SECONDS (its `expires_at` in `secrets`); older ones end now."""
    overlap = timedelta(seconds=settings.CLIENT_SECRET_ROTATION_OVERLAP_SECONDS)
    found, secret = await service.rotate_secret(db, client_id, change, overlap=overlap)
    return SecretRotated(
        client_id=client_id,
        client_secret=secret,
        secrets=[SecretRead(created_at=s.created_at, expires_at=s.expires_at) for s in found.secrets],
    )


@router.delete(
    "/{client_id}/secret/previous",
    response_model=ClientRead,
    responses=error_responses(401, 422, UNAVAILABLE, raises=(*ADMIN_GUARD, ClientNotFound, NoPreviousSecret)),
)
async def revoke_previous_client_secret(client_id: ClientId, change: Change, db: SessionDep) -> ClientRead:
    """End the previous secret now, before its overlap runs out: the rotation is done, or it leaked."""
    return client_read(await service.drop_previous_secret(db, client_id, change))


def _refuse_unserved_grant_types(grant_types: list[str]) -> None:
    """422 `invalid_client_metadata` for a grant type the token endpoint does not serve: a client may use
    exactly the grants in the registry, so a new grant is registrable as soon as its handler is."""
    unserved = [name for name in grant_types if name not in GRANTS.handlers]
    if unserved:
        served = ", ".join(GRANTS.handlers)
        raise InvalidClientMetadata(
            f"grant_types: {', '.join(unserved)} is not served here (served: {served})."
        )
