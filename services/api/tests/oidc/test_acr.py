"""Issue 12: ID tokens carry `acr` (OpenID Connect Core §2), `urn:pyauth:acr:mfa` when `amr` has `mfa`, else
`urn:pyauth:acr:pwd`; discovery lists both; `acr_values` preferring `urn:pyauth:acr:mfa` (a voluntary request,
§3.1.2.1 and §5.5.1.1) sends a browser signed in with the password alone to sign in again when the user has
a second factor, and goes on (acr pwd, the client decides) when they have none."""

from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.mfa import totp
from tests.auth.helpers import signed_up
from tests.mfa.helpers import STEP, claims_of
from tests.mfa.test_hosted_second_step import send_code
from tests.oidc.helpers import (
    AUTHORIZE,
    authorize_params,
    authorized_code,
    code_flow_client,
    exchange,
    location_query,
    pkce_pair,
    signed_in_browser,
)
from tests.web.helpers import sign_in

ACR_MFA = "urn:pyauth:acr:mfa"
ACR_PWD = "urn:pyauth:acr:pwd"


async def _password_only_browser_of_totp_user(
    client: httpx.AsyncClient, clock: ManualClock
) -> tuple[str, str]:
    """A browser signed in with the password while the account had no factor; then the user enrols TOTP
    (through the API): the SSO session's `amr` is still `pwd` alone. Their email and TOTP secret."""
    email, tokens = await signed_up(client)
    signed_in = await sign_in(client, email)
    assert signed_in.status_code == 303, signed_in.text
    started = await client.post("/users/me/mfa/totp", headers=tokens.bearer)
    assert started.status_code == 201, started.text
    secret: str = started.json()["secret"]
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": totp.code_at(secret, clock.now())}, headers=tokens.bearer
    )
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(STEP)
    return email, secret


async def test_oidc_core_2_an_id_token_of_a_password_sign_in_has_acr_pwd_also_on_refresh(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    oauth_client = await code_flow_client(
        client, db_session, grant_types=["authorization_code", "refresh_token"]
    )
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, oauth_client["client_id"], challenge)
    tokens = await exchange(client, oauth_client["client_id"], code, verifier)
    assert tokens.status_code == 200, tokens.text
    claims = claims_of(tokens.json()["id_token"])
    assert claims["acr"] == ACR_PWD and claims["amr"] == ["pwd"]
    refreshed = await client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": oauth_client["client_id"],
            "refresh_token": tokens.json()["refresh_token"],
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["id_token"])["acr"] == ACR_PWD


async def test_oidc_core_3_1_2_1_acr_values_mfa_sends_a_password_only_totp_user_to_sign_in_again(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    email, secret = await _password_only_browser_of_totp_user(client, clock)
    verifier, challenge = pkce_pair()
    params = authorize_params(oauth_client["client_id"], challenge, acr_values=ACR_MFA)
    first = await client.get(AUTHORIZE, params=params)
    assert first.status_code == 303, first.text
    location = first.headers["location"]
    assert location.startswith("/signin?"), location
    target = parse_qs(urlsplit(location).query)["return_to"][0]
    page = await sign_in(client, email, return_to=target)
    assert page.status_code == 200 and 'name="code"' in page.text, page.text  # the second step
    done = await send_code(client, page, totp.code_at(secret, clock.now()))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == target
    # The way back: the session now has mfa, so the same request gives a code (no loop).
    code = location_query(await client.get(target))["code"]
    tokens = await exchange(client, oauth_client["client_id"], code, verifier)
    assert tokens.status_code == 200, tokens.text
    claims = claims_of(tokens.json()["id_token"])
    assert claims["acr"] == ACR_MFA
    assert {"otp", "mfa"} <= set(claims["amr"])


async def test_oidc_core_3_1_2_1_prompt_none_with_acr_values_mfa_without_mfa_in_the_session_is_login_required(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    await _password_only_browser_of_totp_user(client, clock)
    _, challenge = pkce_pair()
    params = authorize_params(oauth_client["client_id"], challenge, acr_values=ACR_MFA, prompt="none")
    query = location_query(await client.get(AUTHORIZE, params=params))
    assert query["error"] == "login_required" and "code" not in query


async def test_oidc_core_5_5_1_1_acr_values_mfa_for_a_user_without_a_factor_goes_on_with_acr_pwd(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(
        client, oauth_client["client_id"], challenge, acr_values=f"{ACR_MFA} unknown"
    )
    tokens = await exchange(client, oauth_client["client_id"], code, verifier)
    assert tokens.status_code == 200, tokens.text
    assert claims_of(tokens.json()["id_token"])["acr"] == ACR_PWD


async def test_acr_values_preferring_pwd_to_mfa_does_not_send_a_totp_user_to_sign_in_again(
    client: httpx.AsyncClient, db_session: AsyncSession, clock: ManualClock
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    await _password_only_browser_of_totp_user(client, clock)
    _, challenge = pkce_pair()
    await authorized_code(client, oauth_client["client_id"], challenge, acr_values=f"{ACR_PWD} {ACR_MFA}")


async def test_oidc_discovery_lists_the_acr_values_and_the_acr_claim(client: httpx.AsyncClient) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert document["acr_values_supported"] == [ACR_PWD, ACR_MFA]
    assert "acr" in document["claims_supported"]
