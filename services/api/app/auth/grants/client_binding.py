"""Refresh tokens are bound to the client they were issued to (RFC 6749 §6, RFC 9700 §4.14.2): another
client presenting one gets `invalid_grant`, and the token is left as it was, unspent, for its own client.

Checked before the token is claimed (the one-statement rotation claims only a token of the presenting
client's session; the step-by-step one checks here first), so a refusal changes nothing but the audit
log. A session's client never changes, so there is no race between this check and the claim."""

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth import repository
from app.auth.errors import InvalidGrant
from app.clients.models import OAuthClient
from app.core.context import RequestContext
from app.core.database import commit_before_refusing

log = logging.getLogger("pyauth.auth")

REFRESH_WRONG_CLIENT = "wrong_client"  # a `refresh.failed` reason


async def refuse_another_clients_token(
    db: AsyncSession, token_hash: bytes, oauth_client: OAuthClient, *, ctx: RequestContext
) -> None:
    """400 `invalid_grant` if the token (by its digest) belongs to a session of another client; unknown
    tokens pass on to the refresh, which refuses them as it always has."""
    auth_session = await repository.session_of_refresh_token(db, token_hash)
    if auth_session is None or auth_session.client_id == oauth_client.client_id:
        return
    await record(
        db,
        AuditEvent.REFRESH_FAILED,
        ctx=ctx,
        user_id=auth_session.user_id,
        session_id=auth_session.id,
        reason=REFRESH_WRONG_CLIENT,
        details={"client_id": oauth_client.client_id},
    )
    await commit_before_refusing(db)
    log.info("refresh refused: %s session=%s", REFRESH_WRONG_CLIENT, auth_session.id)
    raise InvalidGrant()
