"""Issue 12: the second step on the hosted sign-in pages. After the right password an account with TOTP
gets a second page (CSRF-protected, carrying the hosted pages' single-use mfa_token in a hidden field);
the right code starts the SSO session with `amr` pwd, otp, mfa (RFC 8176), which the ID tokens of codes
issued from that session carry (OpenID Connect Core §2)."""

import html
import re

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.mfa import totp
from tests.mfa.helpers import STEP, audit_of, claims_of, enrolled, mfa_grant, mfa_token_of
from tests.oidc.helpers import (
    AUTHORIZE,
    authorize_params,
    code_flow_client,
    exchange,
    location_query,
    pkce_pair,
)
from tests.web.helpers import csrf_token_of, sign_in

SECOND = "/signin/second-factor"
_MFA_TOKEN = re.compile(r'name="mfa_token" value="([^"]+)"')
_RETURN_TO = re.compile(r'name="return_to" value="([^"]+)"')


def mfa_token_in(page: httpx.Response) -> str:
    found = _MFA_TOKEN.search(page.text)
    assert found is not None, page.text
    return found.group(1)


async def second_page(client: httpx.AsyncClient, email: str, return_to: str | None = None) -> httpx.Response:
    page = await sign_in(client, email, return_to=return_to)
    assert page.status_code == 200, page.text
    assert "authenticator app" in page.text and 'name="code"' in page.text
    return page


async def send_code(
    client: httpx.AsyncClient, page: httpx.Response, code: str, method: str = "otp", **extra: str
) -> httpx.Response:
    data = {
        "csrf_token": csrf_token_of(page),
        "mfa_token": mfa_token_in(page),
        "method": method,
        "code": code,
        **extra,
    }
    if found := _RETURN_TO.search(page.text):
        data.setdefault("return_to", html.unescape(found.group(1)))
    return await client.post(SECOND, data=data)


async def browser_amr(db: AsyncSession, user_id: object) -> list[list[str]]:
    rows = await db.execute(
        text("SELECT amr FROM browser_sessions WHERE user_id = :u ORDER BY created_at"), {"u": user_id}
    )
    return [list(amr) for (amr,) in rows.all()]


async def test_rfc8176_a_hosted_sign_in_with_password_and_totp_starts_a_session_whose_amr_has_otp_and_mfa(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    user = await enrolled(client, clock)
    verifier, challenge = pkce_pair()
    params = authorize_params(oauth_client["client_id"], challenge)
    first = await client.get(AUTHORIZE, params=params)
    assert first.status_code in (302, 303) and first.headers["location"].startswith("/signin?")
    target = str(httpx.URL(AUTHORIZE, params=params))
    page = await second_page(client, user.email, return_to=target)
    assert await browser_amr(db_session, user.user_id) == []  # the password alone started nothing
    done = await send_code(client, page, totp.code_at(user.secret, clock.now()))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == target
    assert await browser_amr(db_session, user.user_id) == [["pwd", "otp", "mfa"]]
    code = location_query(await client.get(done.headers["location"]))["code"]
    tokens = await exchange(client, oauth_client["client_id"], code, verifier)
    assert tokens.status_code == 200, tokens.text
    assert {"pwd", "otp", "mfa"} <= set(claims_of(tokens.json()["id_token"])["amr"])


async def test_a_wrong_code_reshows_the_second_page_with_the_error_and_is_counted(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    page = await second_page(client, user.email)
    wrong = "000000" if totp.code_at(user.secret, clock.now()) != "000000" else "111111"
    again = await send_code(client, page, wrong)
    assert again.status_code == 400
    assert 'id="code-error"' in again.text and 'aria-invalid="true"' in again.text
    assert [reason for reason, _ in await audit_of(db_session, user.user_id, "login.mfa_failed")] == [
        "wrong_otp"
    ]
    counted = await db_session.scalar(
        text("SELECT count(*) FROM login_throttles WHERE kind = 'mfa' AND failures > 0")
    )
    assert counted and counted >= 1
    # the same page (same mfa_token) still completes with the right code
    done = await send_code(client, again, totp.code_at(user.secret, clock.now()))
    assert done.status_code == 303, done.text


async def test_a_recovery_code_completes_the_hosted_sign_in_once(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    page = await second_page(client, user.email)
    switched = await send_code(client, page, "", method="recovery_code")
    assert switched.status_code == 200 and "Recovery code" in switched.text
    done = await send_code(client, switched, user.recovery_codes[0], method="recovery_code")
    assert done.status_code == 303, done.text
    assert (await browser_amr(db_session, user.user_id))[-1] == ["pwd", "mfa"]
    clock.advance(STEP)
    page = await second_page(client, user.email)
    reused = await send_code(client, page, user.recovery_codes[0], method="recovery_code")
    assert reused.status_code == 400 and 'id="code-error"' in reused.text
    assert len(await browser_amr(db_session, user.user_id)) == 1


async def test_the_second_page_without_a_live_first_step_is_refused(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    page = await second_page(client, user.email)
    code = totp.code_at(user.secret, clock.now())
    made_up = await send_code(client, page, code, mfa_token="x" * 43)
    assert made_up.status_code == 400
    assert (await client.get(SECOND)).status_code == 303  # a GET goes back to the sign-in form
    # an mfa_token of the API's password grant does not start a browser session, and the reverse
    api_token = await mfa_token_of(client, user.email)
    assert (await send_code(client, page, code, mfa_token=api_token)).status_code == 400
    assert (await mfa_grant(client, mfa_token_in(page), otp=code)).status_code == 400
    assert await browser_amr(db_session, user.user_id) == []
    done = await send_code(client, page, code)
    assert done.status_code == 303, done.text
    clock.advance(STEP)
    spent = await send_code(client, page, totp.code_at(user.secret, clock.now()))
    assert spent.status_code == 400  # single use
    assert len(await browser_amr(db_session, user.user_id)) == 1


async def test_a_second_step_with_a_forged_csrf_token_is_refused(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    page = await second_page(client, user.email)
    forged = await send_code(client, page, totp.code_at(user.secret, clock.now()), csrf_token="forged")
    assert forged.status_code == 400
    assert await browser_amr(db_session, user.user_id) == []


async def test_the_second_page_speaks_the_browsers_language(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    client.headers["Accept-Language"] = "de"
    page = await second_page_de(client, user.email)
    assert "Geben Sie den Code aus Ihrer Authenticator-App ein" in page.text
    assert "Stattdessen einen Wiederherstellungscode verwenden" in page.text
    wrong = await send_code(
        client, page, "000000" if totp.code_at(user.secret, clock.now()) != "000000" else "1"
    )
    assert "Dieser Code ist nicht richtig" in wrong.text


async def second_page_de(client: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await sign_in(client, email)
    assert page.status_code == 200, page.text
    return page
