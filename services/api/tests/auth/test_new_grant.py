"""Issue 10's seam, end to end: a grant type is one handler in the registry. Registered (here for one test,
as a deployment's own module and its line in `GRANTS` would be), it is listed by discovery, a client may be
registered for it through the admin API, and the token endpoint serves it to that client; nothing else in
the code names it. A grant type no handler serves cannot be given to a client."""

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.grants.base import GrantHandler, TokenRequest
from app.auth.grants.registry import GRANTS
from app.auth.issuing import IssuedTokens, audience_of, issue_access_token
from app.clients.models import ClientType
from tests.admin.helpers import admin_account
from tests.clients.helpers import basic, register_client

PING = "urn:example:params:oauth:grant-type:ping"


class PingGrant(GrantHandler):
    """A grant of the kind a deployment might add: a confidential client's 60-second token, scope `ping`."""

    grant_type = PING
    title = "Ping grant"
    fields = ()
    client_types = frozenset({ClientType.CONFIDENTIAL})
    errors = ()

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        client = request.oauth_client
        token, expires_in = issue_access_token(
            request.keyring,
            request.settings,
            subject=client.client_id,
            session_id=None,
            now=request.ctx.now,
            client_id=client.client_id,
            scope=["ping"],
            audience=audience_of(client, request.settings),
            ttl_seconds=60,
        )
        return IssuedTokens(token, expires_in, refresh_token=None, session_id=None, scope=("ping",))


@pytest.fixture
def ping_grant() -> Iterator[None]:
    GRANTS.handlers[PING] = PingGrant()
    try:
        yield
    finally:
        del GRANTS.handlers[PING]


@pytest.mark.usefixtures("ping_grant")
async def test_a_grant_added_to_the_registry_is_discovered_registrable_and_served(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    assert PING in metadata["grant_types_supported"]

    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, name="Pinger", grant_types=[PING])
    assert created["grant_types"] == [PING]

    response = await client.post(
        "/auth/token",
        data={"grant_type": PING},
        headers=basic(created["client_id"], created["client_secret"]),
    )
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 60


async def test_a_client_cannot_be_given_a_grant_type_no_handler_serves(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    refused = await client.post(
        "/admin/clients",
        json={"name": "Pinger", "type": "confidential", "grant_types": [PING]},
        headers=admin.bearer,
    )
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid_client_metadata"
    assert PING in refused.json()["detail"]

    created = await register_client(client, admin, name="Pinger")
    patched = await client.patch(
        f"/admin/clients/{created['client_id']}", json={"grant_types": [PING]}, headers=admin.bearer
    )
    assert patched.status_code == 422
    assert patched.json()["error"] == "invalid_client_metadata"
