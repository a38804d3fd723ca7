"""The rules of the client registry: registering, reading, changing and deleting clients, rotating their
secrets, and checking a client's credentials at the token endpoint.

Every change records its audit event (`admin.client_*`) in the same transaction, with `actor_id` the
administrator (None from the CLI, whose rows carry the reason `cli`) and the client's id in `details`.
A secret is returned to the caller once, when it is made, and only its digest is stored (`hashing`).
"""

import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import service as audit
from app.audit.events import AuditEvent
from app.clients import repository
from app.clients.hashing import new_secret, secret_matches
from app.clients.models import BUILTIN_CLIENT_ID, ClientSecret, ClientType, GrantType, OAuthClient
from app.clients.redirect_uris import checked_redirect_uris
from app.clients.schemas import ClientCreate, ClientUpdate
from app.core.context import RequestContext
from app.core.errors import PyauthError

log = logging.getLogger("pyauth.clients")

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
CLIENT_ID_BYTES = 16  # 128 random bits, URL-safe: unguessable, though a client_id is no secret


class ClientNotFound(PyauthError):
    status_code = 404
    code = "client_not_found"
    message = "No such client."


class InvalidClientMetadata(PyauthError):
    status_code = 422
    code = "invalid_client_metadata"  # RFC 7591 §3.2.2
    message = "A field of the client is not acceptable."


class BuiltInClientProtected(PyauthError):
    status_code = 409
    code = "builtin_client_protected"
    message = (
        "The built-in client serves every token request without client credentials and cannot be deleted; "
        "disable it or remove its grants instead."
    )


class PublicClientHasNoSecret(PyauthError):
    status_code = 409
    code = "public_client_has_no_secret"
    message = "A public client has no secret to rotate."


class NoPreviousSecret(PyauthError):
    status_code = 409  # the client exists; its state (one live secret) refuses the change
    code = "no_previous_secret"
    message = "The client has no previous secret that still works."


@dataclass(frozen=True)
class ClientChange:
    """Who changes the registry, from where and when: what the audit row records. From the CLI,
    `actor_id` is None and `source` is `cli`."""

    ctx: RequestContext
    actor_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    source: str | None = None

    @property
    def now(self) -> datetime:
        return self.ctx.now


@dataclass(frozen=True)
class ClientWithSecrets:
    client: OAuthClient
    secrets: list[ClientSecret]


# Reading


async def get_client(db: AsyncSession, client_id: str, *, now: datetime) -> ClientWithSecrets:
    client = await repository.get(db, client_id)
    if client is None:
        raise ClientNotFound()
    return ClientWithSecrets(client, await repository.live_secrets(db, [client_id], now))


async def list_clients(
    db: AsyncSession, *, limit: int, offset: int, now: datetime
) -> tuple[list[ClientWithSecrets], int]:
    clients, total = await repository.page(db, limit=limit, offset=offset)
    live = await repository.live_secrets(db, [c.client_id for c in clients], now)
    return [ClientWithSecrets(c, [s for s in live if s.client_id == c.client_id]) for c in clients], total


def new_client_id() -> str:
    """128 random bits, URL-safe, never starting with `-`: one that did (1 in 64) would read as an option
    to every command line it is pasted into, `make client ARGS='rotate-secret -x…'` first."""
    while (client_id := secrets.token_urlsafe(CLIENT_ID_BYTES)).startswith("-"):
        pass
    return client_id


# Changing


async def create_client(
    db: AsyncSession, body: ClientCreate, change: ClientChange
) -> tuple[ClientWithSecrets, str | None]:
    """Register a client; a confidential one gets a secret, returned here and never again."""
    client = OAuthClient(
        client_id=new_client_id(),
        name=body.name,
        client_type=body.type,
        redirect_uris=checked_redirect_uris(body.redirect_uris, "redirect_uris"),
        post_logout_redirect_uris=checked_redirect_uris(
            body.post_logout_redirect_uris, "post_logout_redirect_uris"
        ),
        grant_types=_checked_grant_types(body.grant_types, body.type),
        scopes=_checked_scopes(body.scopes),
        first_party=body.first_party,
        id_token_signed_response_alg=body.id_token_signed_response_alg,
        access_token_audience=body.access_token_audience,
        access_token_ttl_seconds=body.access_token_ttl_seconds,
        refresh_token_ttl_seconds=body.refresh_token_ttl_seconds,
        is_disabled=False,
    )
    await repository.add(db, client)
    secret: str | None = None
    live: list[ClientSecret] = []
    if client.is_confidential:
        secret, digest = new_secret()
        live.append(
            await repository.add_secret(db, client_id=client.client_id, secret_hash=digest, now=change.now)
        )
    await _record(
        db,
        change,
        AuditEvent.CLIENT_CREATED,
        client.client_id,
        {"name": client.name, "type": client.client_type, "grant_types": list(client.grant_types)},
    )
    log.info("client created client_id=%s type=%s", client.client_id, client.client_type)
    return ClientWithSecrets(client, live), secret


async def update_client(
    db: AsyncSession, client_id: str, body: ClientUpdate, change: ClientChange
) -> ClientWithSecrets:
    """Change the fields sent. Disabling a client refuses its token requests (refreshes included) from
    now on; the access tokens it holds run out within their lifetime."""
    client = await _locked(db, client_id)
    sent = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for field, sent_value in sent.items():
        value = _checked_field(field, sent_value, ClientType(client.client_type))
        column = "is_disabled" if field == "disabled" else field
        if getattr(client, column) != value:
            setattr(client, column, value)
            changes[field] = value
    if changes:
        await db.flush()
        await db.refresh(client)  # updated_at is set by the database
        await _record(db, change, AuditEvent.CLIENT_UPDATED, client_id, {"changed": sorted(changes)})
        log.info("client updated client_id=%s fields=%s", client_id, ",".join(sorted(changes)))
    return ClientWithSecrets(client, await repository.live_secrets(db, [client_id], change.now))


async def delete_client(db: AsyncSession, client_id: str, change: ClientChange) -> None:
    """Delete the client; its secrets and sessions go with it (ON DELETE CASCADE), so its refresh and
    access tokens stop working at once."""
    if client_id == BUILTIN_CLIENT_ID:
        raise BuiltInClientProtected()
    client = await _locked(db, client_id)
    await _record(db, change, AuditEvent.CLIENT_DELETED, client_id, {"name": client.name})
    await repository.delete_client(db, client)
    log.info("client deleted client_id=%s", client_id)


async def rotate_secret(
    db: AsyncSession, client_id: str, change: ClientChange, *, overlap: timedelta
) -> tuple[ClientWithSecrets, str]:
    """A new secret, returned once. The newest secret before it keeps working for `overlap` (or until it
    was due to expire anyway), so the client's deployments can switch without downtime; any older one
    ends now. At most two secrets are ever live."""
    client = await _locked(db, client_id)
    if not client.is_confidential:
        raise PublicClientHasNoSecret()
    now = change.now
    await repository.delete_expired_secrets(db, client_id, now)
    live = await repository.live_secrets(db, [client_id], now)
    previous = live[-1] if live else None
    await repository.delete_secrets(db, [s.id for s in live[:-1]])
    if previous is not None:
        ends = now + overlap
        previous.expires_at = min(previous.expires_at, ends) if previous.expires_at else ends
    secret, digest = new_secret()
    await repository.add_secret(db, client_id=client_id, secret_hash=digest, now=now)
    await _record(
        db,
        change,
        AuditEvent.CLIENT_SECRET_ROTATED,
        client_id,
        {
            "previous_expires_at": previous.expires_at.isoformat()
            if previous and previous.expires_at
            else None
        },
    )
    log.info("client secret rotated client_id=%s", client_id)
    return ClientWithSecrets(client, await repository.live_secrets(db, [client_id], now)), secret


async def drop_previous_secret(db: AsyncSession, client_id: str, change: ClientChange) -> ClientWithSecrets:
    """End every secret but the newest at once (the rotation is done, or the old one leaked)."""
    await _locked(db, client_id)
    live = await repository.live_secrets(db, [client_id], change.now)
    if len(live) < 2:
        raise NoPreviousSecret()
    await repository.delete_secrets(db, [s.id for s in live[:-1]])
    await _record(db, change, AuditEvent.CLIENT_SECRET_REVOKED, client_id, {"revoked": len(live) - 1})
    log.info("previous client secret revoked client_id=%s", client_id)
    return await get_client(db, client_id, now=change.now)


# Authenticating (the token endpoint)

# The client's read, sent ahead with the token endpoint's rate-limit hit (`find_enabled_client`).
EnabledClientRead = repository.EnabledClientRead


async def find_enabled_client(
    db: AsyncSession, client_id: str, read: EnabledClientRead | None = None
) -> OAuthClient | None:
    """The enabled client `client_id`, read-only: a copy, not the session's (`repository.enabled`). What
    `read` found instead, where it was sent ahead for this client (the token endpoint's)."""
    if read is not None and read.taken and read.client_id == client_id:
        return read.client
    return await repository.enabled(db, client_id)


async def secret_is_valid(db: AsyncSession, client: OAuthClient, secret: str, *, now: datetime) -> bool:
    """Whether `secret` is one of the client's live secrets (constant-time comparison)."""
    return secret_matches(secret, await repository.live_secret_hashes(db, client.client_id, now))


# Helpers


async def _locked(db: AsyncSession, client_id: str) -> OAuthClient:
    client = await repository.get_for_update(db, client_id)
    if client is None:
        raise ClientNotFound()
    return client


def _checked_field(field: str, value: Any, client_type: ClientType) -> Any:
    """A PATCH field's value as it is stored, checked as on registration."""
    if field in {"redirect_uris", "post_logout_redirect_uris"}:
        return checked_redirect_uris(_required(value, field), field)
    if field == "grant_types":
        return _checked_grant_types(_required(value, field), client_type)
    if field == "scopes":
        return _checked_scopes(_required(value, field))
    if field in {"name", "first_party", "id_token_signed_response_alg", "disabled"}:
        return _required(value, field)
    return value  # the optional overrides: null restores the default


def _required(value: Any, field: str) -> Any:
    if value is None:
        raise InvalidClientMetadata(f"{field} cannot be null.")
    return value


def _checked_grant_types(grant_types: Sequence[str], client_type: ClientType) -> list[str]:
    if GrantType.CLIENT_CREDENTIALS in grant_types and client_type != ClientType.CONFIDENTIAL:
        raise InvalidClientMetadata("grant_types: client_credentials is only for confidential clients.")
    return [str(grant) for grant in dict.fromkeys(grant_types)]


def _checked_scopes(scopes: Sequence[str]) -> list[str]:
    for index, scope in enumerate(scopes):
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise InvalidClientMetadata(f"scopes[{index}] is not a scope token (RFC 6749 §3.3).")
    return list(dict.fromkeys(scopes))


async def _record(
    db: AsyncSession, change: ClientChange, event: AuditEvent, client_id: str, details: dict[str, Any]
) -> None:
    await audit.record(
        db,
        event,
        ctx=change.ctx,
        actor_id=change.actor_id,
        session_id=change.session_id,
        reason=change.source,
        details={"client_id": client_id, **details},
    )
