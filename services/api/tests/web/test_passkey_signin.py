"""Issue 12: passkeys on the hosted sign-in pages, driven over HTTP with the software authenticator
(tests/passkeys/authenticator.py, real ES256 signatures) playing the browser's WebAuthn part.

The second page offers an account's passkey: `POST /signin/second-factor/passkey-options` answers options
bound to the page's mfa_token and the assertion goes back in the form's `credential` field with method
`webauthn`; the browser session then has `amr` pwd, hwk, mfa (RFC 8176). A passkey also signs in alone:
`POST /signin/passkey/options` (options for nobody, UV required) and `POST /signin/passkey`, whose session
has `amr` hwk, user, mfa: the key held, and the user verification that unlocked it."""

import html
import json
import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.dependencies import trusted_networks
from app.oidc.acr import ACR_MFA, acr_of
from app.web import cookies
from tests.auth.helpers import PASSWORD, signed_up
from tests.mfa.helpers import audit_of, enrolled
from tests.mfa.test_hosted_second_step import browser_amr, mfa_token_in
from tests.mfa.test_webauthn import with_passkey
from tests.oidc.helpers import AUTHORIZE, authorize_params, code_flow_client, location_query, pkce_pair
from tests.passkeys.authenticator import SoftAuthenticator, b64url
from tests.passkeys.test_passkeys import authenticator_for, enrol, user_named
from tests.web.helpers import csrf_token_of, form_token, sign_in

SECOND = "/signin/second-factor"
SECOND_OPTIONS = "/signin/second-factor/passkey-options"
PASSWORDLESS = "/signin/passkey"
PASSWORDLESS_OPTIONS = "/signin/passkey/options"
_RETURN_TO = re.compile(r'name="return_to" value="([^"]+)"')


# --- client-side steps ---


async def second_page_of(
    client: httpx.AsyncClient, email: str, return_to: str | None = None
) -> httpx.Response:
    page = await sign_in(client, email, return_to=return_to)
    assert page.status_code == 200, page.text
    assert "Use your passkey" in page.text
    return page


async def second_step_options(client: httpx.AsyncClient, page: httpx.Response) -> dict[str, Any]:
    answer = await client.post(
        SECOND_OPTIONS, data={"csrf_token": csrf_token_of(page), "mfa_token": mfa_token_in(page)}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    options: dict[str, Any] = answer.json()
    return options


async def send_passkey(
    client: httpx.AsyncClient, page: httpx.Response, credential: dict[str, Any] | str, **extra: str
) -> httpx.Response:
    data = {
        "csrf_token": csrf_token_of(page),
        "mfa_token": mfa_token_in(page),
        "method": "webauthn",
        "credential": credential if isinstance(credential, str) else json.dumps(credential),
        **extra,
    }
    if found := _RETURN_TO.search(page.text):
        data.setdefault("return_to", html.unescape(found.group(1)))
    return await client.post(SECOND, data=data)


async def passwordless_options(client: httpx.AsyncClient, csrf_token: str, **headers: str) -> httpx.Response:
    return await client.post(PASSWORDLESS_OPTIONS, data={"csrf_token": csrf_token}, headers=headers)


async def passwordless(
    client: httpx.AsyncClient, authenticator: SoftAuthenticator, *, return_to: str | None = None
) -> httpx.Response:
    """The sign-in page's passkey button: options, the authenticator's answer, the form's POST."""
    token = await form_token(
        client, f"/signin?{urlencode({'return_to': return_to})}" if return_to else "/signin"
    )
    options = await passwordless_options(client, token)
    assert options.status_code == 200, options.text
    data = {"csrf_token": token, "credential": json.dumps(authenticator.get(options.json()))}
    if return_to is not None:
        data["return_to"] = return_to
    return await client.post(PASSWORDLESS, data=data)


async def events(db: AsyncSession, event: str) -> list[tuple[uuid.UUID | None, str | None, Any]]:
    rows = await db.execute(
        text("SELECT user_id, reason, details FROM audit_events WHERE event = :e ORDER BY id"), {"e": event}
    )
    return [(user_id, reason, details) for user_id, reason, details in rows.all()]


def sso_cookie(client: httpx.AsyncClient, app: FastAPI) -> str | None:
    return client.cookies.get(cookies.cookie_name(cookies.SSO_NAME, app.state.settings))


# --- the passkey as the second step ---


async def test_a_passkey_only_account_signs_in_on_the_hosted_pages_with_amr_pwd_hwk_mfa(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    page = await second_page_of(client, email)
    # The passkey is the page's main action; the page loads the script, and only pyauth's.
    assert "Confirm with your passkey" in page.text and 'name="code"' not in page.text
    assert '<button type="submit" class="primary">Use your passkey</button>' in page.text
    assert '<script src="/static/passkey-signin.js" defer></script>' in page.text
    assert "script-src 'self'; connect-src 'self';" in page.headers["content-security-policy"]

    options = await second_step_options(client, page)
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(authenticator.credential_id)]
    done = await send_passkey(client, page, authenticator.get(options))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/account"
    assert await browser_amr(db_session, user.id) == [["pwd", "hwk", "mfa"]]
    assert (await client.get("/account")).status_code == 200


async def test_an_account_with_totp_and_a_passkey_may_use_either_on_the_second_page(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    authenticator = authenticator_for(client, backup_eligible=True, counting=False)
    await enrol(client, user.tokens, authenticator)
    page = await second_page_of(client, user.email)
    # The code stays the main action; the passkey and the recovery code are the other buttons.
    assert 'name="code"' in page.text and "Enter the code from your authenticator app" in page.text
    assert '<button type="submit" class="secondary">Use your passkey</button>' in page.text
    assert "Use a recovery code instead" in page.text

    done = await send_passkey(client, page, authenticator.get(await second_step_options(client, page)))
    assert done.status_code == 303, done.text
    assert await browser_amr(db_session, user.user_id) == [["pwd", "swk", "mfa"]]


async def test_a_second_page_assertion_from_another_origin_is_refused_and_the_page_shown_again(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    page = await second_page_of(client, email)
    refused = await send_passkey(
        client,
        page,
        authenticator.get(await second_step_options(client, page), origin="https://evil.example"),
    )
    assert refused.status_code == 400, refused.text
    assert "Your passkey could not be verified. Try again." in refused.text
    assert "Use your passkey" in refused.text and mfa_token_in(refused) == mfa_token_in(page)
    assert [reason for reason, _ in await audit_of(db_session, user.id, "passkey.assertion_failed")] == [
        "verification"
    ]
    assert await browser_amr(db_session, user.id) == []
    # The attempt was counted on the account's second-factor counter, as the mfa grant counts it.
    counted = await db_session.scalar(
        text("SELECT failures FROM login_throttles WHERE kind = 'mfa' AND email = :e"), {"e": email}
    )
    assert counted == 1
    # The same page still completes with a fresh, right answer.
    done = await send_passkey(client, refused, authenticator.get(await second_step_options(client, refused)))
    assert done.status_code == 303, done.text


async def test_a_replayed_assertion_is_refused_on_the_second_page(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    first = await second_page_of(client, email)
    assertion = authenticator.get(await second_step_options(client, first))
    assert (await send_passkey(client, first, assertion)).status_code == 303

    second = await second_page_of(client, email)
    replayed = await send_passkey(client, second, assertion)
    assert replayed.status_code == 400, replayed.text
    assert "Your passkey could not be verified" in replayed.text
    user = await user_named(db_session, email)
    assert len(await browser_amr(db_session, user.id)) == 1


async def test_an_assertion_answering_another_sign_in_attempts_options_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    one = await second_page_of(client, email)
    other = await second_page_of(client, email)
    assert mfa_token_in(one) != mfa_token_in(other)
    # Options (and the challenge) of the first attempt, the answer sent with the second's mfa_token.
    answer = authenticator.get(await second_step_options(client, one))
    refused = await send_passkey(client, other, answer)
    assert refused.status_code == 400, refused.text
    user = await user_named(db_session, email)
    assert [reason for reason, _ in await audit_of(db_session, user.id, "passkey.assertion_failed")] == [
        "challenge"
    ]
    assert await browser_amr(db_session, user.id) == []


async def test_the_second_page_passkey_needs_the_csrf_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    page = await second_page_of(client, email)
    no_options = await client.post(SECOND_OPTIONS, data={"mfa_token": mfa_token_in(page)})
    assert no_options.status_code == 400 and no_options.json()["error"] == "csrf_refused"
    answer = authenticator.get(await second_step_options(client, page))
    refused = await send_passkey(client, page, answer, csrf_token="")
    assert refused.status_code == 400 and "did not come from this site" in refused.text
    assert await browser_amr(db_session, (await user_named(db_session, email)).id) == []
    # The page's own token still works: nothing was spent by the forged post.
    assert (await send_passkey(client, page, answer)).status_code == 303


async def test_second_page_options_need_a_live_hosted_mfa_token(client: httpx.AsyncClient) -> None:
    email, _ = await with_passkey(client)
    page = await second_page_of(client, email)
    for token in ("", "not-a-token"):
        refused = await client.post(
            SECOND_OPTIONS, data={"csrf_token": csrf_token_of(page), "mfa_token": token}
        )
        assert refused.status_code == 400 and refused.json()["error"] == "second_step_expired"


# --- passwordless ---


async def test_a_discoverable_passkey_signs_in_without_a_password_with_amr_hwk_user_mfa(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    page = await client.get("/signin")
    # The button is there for the script to show; hidden until it finds WebAuthn.
    assert re.search(r'<form method="post" action="/signin/passkey"[^>]* hidden', page.text)
    options = await passwordless_options(client, csrf_token_of(page))
    assert options.status_code == 200, options.text
    assert options.headers["cache-control"] == "no-store"
    assert options.json()["allowCredentials"] == [] and options.json()["userVerification"] == "required"

    done = await client.post(
        PASSWORDLESS,
        data={"csrf_token": csrf_token_of(page), "credential": json.dumps(authenticator.get(options.json()))},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/account"
    amr = await browser_amr(db_session, user.id)
    assert amr == [["hwk", "user", "mfa"]] and acr_of(amr[0]) == ACR_MFA
    assert (await client.get("/account")).status_code == 200
    succeeded = await audit_of(db_session, user.id, "login.succeeded")
    assert succeeded[-1][1]["method"] == "passkey"


async def test_a_passwordless_sign_in_returns_to_the_authorization_request(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    oauth_client = await code_flow_client(client, db_session)
    _, authenticator = await with_passkey(client)
    params = authorize_params(oauth_client["client_id"], pkce_pair()[1])
    to_signin = await client.get(AUTHORIZE, params=params)
    page = await client.get(to_signin.headers["location"])
    csp = page.headers["content-security-policy"]
    # The form's POST ends at the client through /oauth2/authorize: its origin is a form-action.
    assert "form-action 'self' https://app.example.com;" in csp and "script-src 'self';" in csp
    target = str(httpx.URL(AUTHORIZE, params=params))
    done = await passwordless(client, authenticator, return_to=target)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == target
    assert "code" in location_query(await client.get(target))


async def test_a_passwordless_sign_in_replaces_the_browser_session_and_the_csrf_secret(
    client: httpx.AsyncClient, app: FastAPI, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    # The browser is signed in (as someone else, with a password) before the passkey signs it in.
    other_email, _ = await signed_up(client)
    assert (await sign_in(client, other_email)).status_code == 303
    old_cookie = sso_cookie(client, app)
    old_csrf = client.cookies.get(cookies.cookie_name(cookies.CSRF_NAME, app.state.settings))
    assert old_cookie

    done = await passwordless(client, authenticator)
    assert done.status_code == 303, done.text
    new_cookie = sso_cookie(client, app)
    assert new_cookie and new_cookie != old_cookie
    assert client.cookies.get(cookies.cookie_name(cookies.CSRF_NAME, app.state.settings)) != old_csrf
    ended = await db_session.execute(
        text(
            "SELECT ended_reason FROM browser_sessions b JOIN users u ON u.id = b.user_id WHERE u.email = :e"
        ),
        {"e": other_email},
    )
    assert [reason for (reason,) in ended.all()] == ["replaced"]
    # The old cookie no longer signs anyone in.
    client.cookies.clear()
    client.cookies.set(cookies.cookie_name(cookies.SSO_NAME, app.state.settings), old_cookie)
    assert (await client.get("/account")).status_code == 303
    assert len(await browser_amr(db_session, user.id)) == 1


async def test_an_unknown_passkey_is_refused_on_the_sign_in_page_and_audited(
    client: httpx.AsyncClient, app: FastAPI, db_session: AsyncSession
) -> None:
    stranger = authenticator_for(client)
    stranger.user_handle = uuid.uuid4().bytes  # made for an account this server never had
    refused = await passwordless(client, stranger)
    assert refused.status_code == 400, refused.text
    assert "Your passkey could not be verified. Try again." in refused.text
    assert 'name="password"' in refused.text  # the sign-in page again
    assert sso_cookie(client, app) is None
    assert ("unknown_credential", {"method": "passkey"}) in [
        (reason, details) for _, reason, details in await events(db_session, "login.failed")
    ]
    assert "unknown_credential" in [
        reason for _, reason, _ in await events(db_session, "passkey.assertion_failed")
    ]


async def test_a_passkey_of_an_inactive_account_does_not_sign_in(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    await db_session.execute(text("UPDATE users SET is_active = false WHERE id = :u"), {"u": user.id})
    refused = await passwordless(client, authenticator)
    assert refused.status_code == 400, refused.text
    assert "Your passkey could not be verified" in refused.text
    assert [reason for reason, _ in await audit_of(db_session, user.id, "passkey.assertion_failed")] == [
        "inactive"
    ]
    assert [reason for reason, _ in await audit_of(db_session, user.id, "login.failed")] == ["inactive"]
    assert await browser_amr(db_session, user.id) == []


async def test_a_passkey_of_an_unverified_account_is_told_to_verify_first_where_the_password_would_be(
    client: httpx.AsyncClient, app: FastAPI, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    await db_session.execute(text("UPDATE users SET is_verified = false WHERE id = :u"), {"u": user.id})
    # ALLOW_UNVERIFIED_LOGIN (on by default) lets an unverified account sign in, with a passkey too.
    assert (await passwordless(client, authenticator)).status_code == 303
    app.state.settings = app.state.settings.model_copy(update={"ALLOW_UNVERIFIED_LOGIN": False})
    refused = await passwordless(client, authenticator)
    assert refused.status_code == 400, refused.text
    assert "Your email address is not verified yet" in refused.text
    assert [reason for reason, _ in await audit_of(db_session, user.id, "login.failed")] == ["unverified"]
    assert len(await browser_amr(db_session, user.id)) == 1


@pytest.mark.parametrize("credential", ["", "not json", '{"id": 1}', json.dumps({"response": {}}), "[" * 500])
async def test_garbage_instead_of_an_assertion_is_a_clear_400(
    client: httpx.AsyncClient, credential: str
) -> None:
    token = await form_token(client)
    refused = await client.post(PASSWORDLESS, data={"csrf_token": token, "credential": credential})
    assert refused.status_code == 400, refused.text
    assert "Your passkey could not be verified" in refused.text


async def test_passwordless_sign_in_needs_the_csrf_token(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    no_options = await passwordless_options(client, "")
    assert no_options.status_code == 400 and no_options.json()["error"] == "csrf_refused"
    token = await form_token(client)
    options = (await passwordless_options(client, token)).json()
    refused = await client.post(PASSWORDLESS, data={"credential": json.dumps(authenticator.get(options))})
    assert refused.status_code == 400 and "did not come from this site" in refused.text
    assert await browser_amr(db_session, (await user_named(db_session, email)).id) == []


async def test_the_passkey_options_are_limited_per_client_address(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_PASSKEY_OPTIONS": 2}
    )
    app.state.trusted_proxies = trusted_networks(["127.0.0.1/32"])
    clock.advance(timedelta(days=uuid.uuid4().int % 100_000))  # a window no earlier test used
    token = await form_token(client)
    address = {"X-Forwarded-For": f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"}
    before = await db_session.scalar(text("SELECT count(*) FROM webauthn_challenges"))
    statuses = [(await passwordless_options(client, token, **address)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await passwordless_options(client, token, **address)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert await db_session.scalar(text("SELECT count(*) FROM webauthn_challenges")) == before + 2
    # Another address is not held back.
    other = await passwordless_options(client, token, **{"X-Forwarded-For": "10.9.0.250"})
    assert other.status_code == 200


async def test_the_passkey_words_are_translated(client: httpx.AsyncClient) -> None:
    email, _ = await with_passkey(client)
    page = await client.get("/signin", headers={"Accept-Language": "de"})
    assert "Mit einem Passkey anmelden" in page.text
    token = csrf_token_of(page)
    second = await client.post(
        "/signin",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        headers={"Accept-Language": "de"},
    )
    assert "Mit Ihrem Passkey bestätigen" in second.text and "Ihren Passkey verwenden" in second.text


async def test_a_passwordless_assertion_without_user_verification_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    """Without UV the passkey would be one factor only: passwordless options require it (WebAuthn §7.2
    step 17), whatever WEBAUTHN_USER_VERIFICATION says for second factors."""
    email, authenticator = await with_passkey(client)
    user = await user_named(db_session, email)
    token = await form_token(client)
    options = (await passwordless_options(client, token)).json()
    refused = await client.post(
        PASSWORDLESS,
        data={"csrf_token": token, "credential": json.dumps(authenticator.get(options, uv=False))},
    )
    assert refused.status_code == 400, refused.text
    assert [reason for reason, _ in await audit_of(db_session, user.id, "passkey.assertion_failed")] == [
        "verification"
    ]
    assert await browser_amr(db_session, user.id) == []
