"""Issue 11: consent for third-party clients, remembered per user and client; `prompt=consent` and
`prompt=none`; Deny; and `/users/me/grants`, whose revocation ends the client's refresh tokens."""

import html
import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from tests.auth.helpers import PASSWORD, password_grant, tokens_of
from tests.oidc.helpers import (
    AUTHORIZE,
    authorize_params,
    code_flow_client,
    exchange,
    location_query,
    pkce_pair,
    signed_in_browser,
)

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def consent_form(page: httpx.Response) -> dict[str, str]:
    assert page.status_code == 200, page.text
    return {html.unescape(name): html.unescape(value) for name, value in _HIDDEN.findall(page.text)}


async def test_consent_page_names_the_client_and_scopes_and_allow_is_remembered(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session, first_party=False, name="Photo Printer"))[
        "client_id"
    ]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    page = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge))
    assert "Photo Printer" in page.text and "See your email address" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    allowed = await client.post(AUTHORIZE, data={**consent_form(page), "consent": "allow"})
    query = location_query(allowed)
    assert query["state"] == "state-123"
    assert (await exchange(client, client_id, query["code"], verifier)).status_code == 200

    # Remembered: no page the next time, until prompt=consent asks again.
    assert "code" in location_query(
        await client.get(AUTHORIZE, params=authorize_params(client_id, challenge))
    )
    again = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge, prompt="consent"))
    assert again.status_code == 200 and "Photo Printer" in again.text


async def test_consent_deny_is_access_denied(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    client_id = (await code_flow_client(client, db_session, first_party=False))["client_id"]
    await signed_in_browser(client)
    page = await client.get(AUTHORIZE, params=authorize_params(client_id, pkce_pair()[1]))
    denied = location_query(await client.post(AUTHORIZE, data={**consent_form(page), "consent": "deny"}))
    assert (denied["error"], denied["state"]) == ("access_denied", "state-123")


async def test_consent_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session, first_party=False))["client_id"]
    await signed_in_browser(client)
    page = await client.get(AUTHORIZE, params=authorize_params(client_id, pkce_pair()[1]))
    forged = {**consent_form(page), "consent": "allow", "csrf_token": "forged"}
    refused = await client.post(AUTHORIZE, data=forged)
    assert refused.status_code in {400, 403}
    assert "location" not in refused.headers


async def test_prompt_none_without_consent_is_consent_required(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session, first_party=False))["client_id"]
    await signed_in_browser(client)
    response = await client.get(AUTHORIZE, params=authorize_params(client_id, pkce_pair()[1], prompt="none"))
    assert location_query(response)["error"] == "consent_required"


async def test_revoking_an_app_grant_ends_the_client_s_refresh_tokens(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    client_id = (await code_flow_client(client, db_session, first_party=False, name="Notes"))["client_id"]
    email = await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    page = await client.get(AUTHORIZE, params=authorize_params(client_id, challenge))
    code = location_query(await client.post(AUTHORIZE, data={**consent_form(page), "consent": "allow"}))[
        "code"
    ]
    app_tokens = (await exchange(client, client_id, code, verifier)).json()
    own = tokens_of(await password_grant(client, email, PASSWORD))

    listed = await client.get("/users/me/grants", headers=own.bearer)
    assert [(g["client_id"], g["client_name"], g["scopes"]) for g in listed.json()] == [
        (client_id, "Notes", ["openid", "email"])
    ]
    assert (await client.delete(f"/users/me/grants/{client_id}", headers=own.bearer)).status_code == 204
    assert (await client.get("/users/me/grants", headers=own.bearer)).json() == []
    refreshed = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": app_tokens["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.json()["error"] == "invalid_grant"
    assert (await client.get("/users/me", headers=own.bearer)).status_code == 200  # other sessions kept
    assert (await client.delete(f"/users/me/grants/{client_id}", headers=own.bearer)).status_code == 404
    # Consent is asked again.
    assert (await client.get(AUTHORIZE, params=authorize_params(client_id, challenge))).status_code == 200


async def test_answering_consent_after_max_age_ran_out_does_not_send_the_user_back_to_sign_in(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    client_id = (await code_flow_client(client, db_session, first_party=False))["client_id"]
    await signed_in_browser(client)
    page = await client.get(AUTHORIZE, params=authorize_params(client_id, pkce_pair()[1], max_age="1"))
    clock.advance(timedelta(seconds=5))  # reading the page
    allowed = await client.post(AUTHORIZE, data={**consent_form(page), "consent": "allow"})
    assert "code" in location_query(allowed)
