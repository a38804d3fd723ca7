"""Issue 12: the hosted account security page, `/account/security`. The browser's SSO session manages its
own second factors: a TOTP authenticator app (a QR code drawn as inline SVG, confirmed with a code, the
recovery codes shown once), new recovery codes, and passkeys (added with the software authenticator through
the page script's two requests, renamed, removed). Every change is a CSRF-checked form POST that needs a
recent sign-in (the browser session's `auth_time` within MFA_REAUTH_SECONDS), and is audited and mailed as
through the API."""

import json
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import ManualClock
from app.core.config import Settings
from app.web.security import qr_code_svg
from tests.account.helpers import mails_to
from tests.admin.helpers import make_admin
from tests.auth.helpers import signed_up
from tests.mfa.helpers import audit_of
from tests.passkeys.authenticator import SoftAuthenticator
from tests.web.helpers import csrf_token_of, sign_in

PAGE = "/account/security"
_SECRET = re.compile(r'<code id="totp-secret" class="secret">([A-Z2-7]+)</code>')
_CODES = re.compile(r"<li><code>([^<]+)</code></li>")


def settings_of(client: httpx.AsyncClient) -> Settings:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return settings


async def signed_in(client: httpx.AsyncClient) -> tuple[str, uuid.UUID]:
    """A new account signed in on the hosted pages (the client holds its SSO cookie): email and id."""
    email, _ = await signed_up(client)
    assert (await sign_in(client, email)).status_code == 303
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    return email, await _user_id(client, email)


async def _user_id(client: httpx.AsyncClient, email: str) -> uuid.UUID:
    async with client.app.state.sessionmaker() as db:  # type: ignore[attr-defined]
        found = await db.scalar(text("SELECT id FROM users WHERE email = :e"), {"e": email})
    assert isinstance(found, uuid.UUID)
    return found


async def post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """A form of the security page, with the page's CSRF token."""
    token = csrf_token_of(await client.get(PAGE))
    return await client.post(path, data={"csrf_token": token, **fields})


def secret_on(page: httpx.Response) -> str:
    found = _SECRET.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def codes_on(page: httpx.Response) -> list[str]:
    return _CODES.findall(page.text)


async def enrol_totp(client: httpx.AsyncClient, clock: ManualClock) -> tuple[str, list[str]]:
    """Set up the authenticator through the page: its secret and the recovery codes shown."""
    started = await post(client, f"{PAGE}/totp")
    assert started.status_code == 200, started.text
    secret = secret_on(started)
    done = await client.post(
        f"{PAGE}/totp/confirm",
        data={"csrf_token": csrf_token_of(started), "code": pyotp.TOTP(secret).at(clock.now())},
    )
    assert done.status_code == 200, done.text
    return secret, codes_on(done)


def authenticator_for(client: httpx.AsyncClient) -> SoftAuthenticator:
    settings = settings_of(client)
    return SoftAuthenticator(origin=settings.webauthn_origins[0], rp_id=settings.webauthn_rp_id)


async def add_passkey(
    client: httpx.AsyncClient, authenticator: SoftAuthenticator, name: str
) -> httpx.Response:
    """What the page script does: the options (a form POST with the CSRF token, answered in JSON), the
    authenticator's answer, then the add form with the name and the answer as JSON."""
    token = csrf_token_of(await client.get(PAGE))
    options = await client.post(f"{PAGE}/passkeys/options", data={"csrf_token": token})
    assert options.status_code == 200, options.text
    assert options.headers["content-type"].startswith("application/json")
    assert options.headers["cache-control"] == "no-store"
    credential = authenticator.create(options.json())
    return await client.post(
        f"{PAGE}/passkeys", data={"csrf_token": token, "name": name, "credential": json.dumps(credential)}
    )


async def passkey_rows(db: AsyncSession, user_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    rows = await db.execute(
        text("SELECT id, name FROM passkeys WHERE user_id = :u ORDER BY created_at, name"), {"u": user_id}
    )
    return [(found_id, name) for found_id, name in rows.all()]


async def factor_state(db: AsyncSession, user_id: uuid.UUID) -> tuple[Any, ...]:
    """Everything a change on the page could touch: the authenticator, the recovery codes, the passkeys,
    the registration challenges, the mails queued."""
    totp = (
        await db.execute(
            text("SELECT secret_encrypted, confirmed_at FROM mfa_totp WHERE user_id = :u"), {"u": user_id}
        )
    ).all()
    codes = (
        await db.execute(
            text("SELECT code_hash, used_at FROM mfa_recovery_codes WHERE user_id = :u ORDER BY code_hash"),
            {"u": user_id},
        )
    ).all()
    challenges = await db.scalar(
        text("SELECT count(*) FROM webauthn_challenges WHERE user_id = :u"), {"u": user_id}
    )
    mails = await db.scalar(
        text("SELECT count(*) FROM mail_outbox WHERE recipient = (SELECT email FROM users WHERE id = :u)"),
        {"u": user_id},
    )
    return (totp, codes, await passkey_rows(db, user_id), challenges, mails)


# --- Who may see it ---


async def test_without_a_browser_session_the_page_and_its_forms_send_the_browser_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    token = csrf_token_of(await client.get("/signin"))  # a genuine token: only the session is missing
    for answer in (await client.get(PAGE), await client.post(f"{PAGE}/totp", data={"csrf_token": token})):
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin?return_to=%2Faccount%2Fsecurity"
    refused = await client.post(f"{PAGE}/passkeys/options", data={"csrf_token": token})
    assert refused.status_code == 401
    assert refused.json() == {
        "error": "signed_out",
        "message": "You are signed out. Sign in again, then add the passkey.",
    }
    assert refused.headers["cache-control"] == "no-store"


async def test_the_account_page_links_to_the_security_page_which_shows_the_factors(
    client: httpx.AsyncClient,
) -> None:
    email, _ = await signed_in(client)
    account = await client.get("/account")
    assert 'href="/account/security"' in account.text
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert email in page.text
    assert 'id="totp-status">Off.' in page.text
    assert "No passkeys yet." in page.text
    # The page script is the only one, named by the page; the add form waits for it (hidden).
    assert '<script src="/static/passkey-register.js" defer></script>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert re.search(r'<form id="passkey-add"[^>]*\bhidden>', page.text)


async def test_a_form_post_without_its_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    _, user_id = await signed_in(client)
    before = await factor_state(db_session, user_id)
    for path in (f"{PAGE}/totp", f"{PAGE}/recovery-codes", f"{PAGE}/totp/remove", f"{PAGE}/passkeys"):
        for token in ("", "forged"):
            refused = await client.post(path, data={"csrf_token": token, "confirm": "yes"})
            assert refused.status_code == 400, (path, refused.text)
    options = await client.post(f"{PAGE}/passkeys/options", data={})
    assert options.status_code == 400
    assert options.json()["error"] == "csrf_refused"
    assert await factor_state(db_session, user_id) == before


# --- TOTP ---


async def test_totp_enrolment_shows_an_inline_svg_qr_code_and_a_secret_whose_code_turns_it_on(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    email, user_id = await signed_in(client)
    started = await post(client, f"{PAGE}/totp")
    assert started.status_code == 200, started.text
    assert started.headers["cache-control"] == "no-store"
    secret = secret_on(started)
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=settings_of(client).SERVICE_NAME)
    # The QR code is inline SVG markup of exactly this otpauth URI: no image request, no data: URI.
    label = "QR code to scan with an authenticator app"
    assert str(qr_code_svg(uri, label)) in started.text
    assert '<svg role="img" aria-label="QR code to scan with an authenticator app"' in started.text
    assert "data:" not in started.text and "<img" not in started.text
    assert "data:" not in started.headers["content-security-policy"]

    # A wrong code shows the same enrolment again with the error; nothing is on yet.
    wrong = "000000" if pyotp.TOTP(secret).at(clock.now()) != "000000" else "111111"
    refused = await client.post(
        f"{PAGE}/totp/confirm", data={"csrf_token": csrf_token_of(started), "code": wrong}
    )
    assert refused.status_code == 400
    assert secret_on(refused) == secret
    assert 'id="code-error"' in refused.text
    assert 'id="totp-status">Off.' in (await client.get(PAGE)).text

    confirmed = await client.post(
        f"{PAGE}/totp/confirm",
        data={"csrf_token": csrf_token_of(refused), "code": pyotp.TOTP(secret).at(clock.now())},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.headers["cache-control"] == "no-store"
    codes = codes_on(confirmed)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "Save these recovery codes now: they are shown only this once." in confirmed.text
    assert await audit_of(db_session, user_id, "mfa.totp_enabled")
    assert len(await mails_to(db_session, email, "mfa_changed")) == 1

    page = await client.get(PAGE)
    assert "On since" in page.text and "10 recovery codes left." in page.text
    assert not any(code in page.text for code in codes), "the codes are shown only once"
    assert secret not in page.text


async def test_new_recovery_codes_are_shown_once_and_replace_the_old_ones(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    email, user_id = await signed_in(client)
    _, first = await enrol_totp(client, clock)
    renewed = await post(client, f"{PAGE}/recovery-codes")
    assert renewed.status_code == 200, renewed.text
    assert renewed.headers["cache-control"] == "no-store"
    second = codes_on(renewed)
    assert len(second) == 10 and not set(first) & set(second)
    assert "The old ones no longer work." in renewed.text
    assert await audit_of(db_session, user_id, "mfa.recovery_codes_regenerated")
    assert len(await mails_to(db_session, email, "mfa_changed")) == 2
    page = (await client.get(PAGE)).text
    assert not any(code in page for code in second)


async def test_removing_the_authenticator_asks_first_then_removes_it_and_its_recovery_codes(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    email, user_id = await signed_in(client)
    await enrol_totp(client, clock)
    asked = await post(client, f"{PAGE}/totp/remove")
    assert asked.status_code == 200
    assert "Remove the authenticator app?" in asked.text and 'name="confirm" value="yes"' in asked.text
    assert "On since" in (await client.get(PAGE)).text, "asking removes nothing"

    removed = await client.post(
        f"{PAGE}/totp/remove", data={"csrf_token": csrf_token_of(asked), "confirm": "yes"}
    )
    assert removed.status_code == 303
    assert removed.headers["location"] == f"{PAGE}?done=totp_removed"
    page = await client.get(removed.headers["location"])
    assert "The authenticator app was removed." in page.text and 'id="totp-status">Off.' in page.text
    totp, codes, *_ = await factor_state(db_session, user_id)
    assert totp == [] and codes == []
    assert await audit_of(db_session, user_id, "mfa.totp_removed")
    assert len(await mails_to(db_session, email, "mfa_changed")) == 2  # enabled, removed


# --- Passkeys ---


async def test_a_passkey_is_added_through_the_options_and_the_form_then_listed_audited_and_mailed(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, user_id = await signed_in(client)
    added = await add_passkey(client, authenticator_for(client), "Work laptop")
    assert added.status_code == 303, added.text
    assert added.headers["location"] == f"{PAGE}?done=passkey_added"
    page = await client.get(added.headers["location"])
    assert "The passkey was added." in page.text
    assert '<strong class="passkey-name">Work laptop</strong>' in page.text and "never used" in page.text
    assert [name for _, name in await passkey_rows(db_session, user_id)] == ["Work laptop"]
    assert await audit_of(db_session, user_id, "passkey.registered")
    assert len(await mails_to(db_session, email, "passkey_added")) == 1


async def test_a_passkey_answer_that_fails_verification_is_refused_with_the_page_and_nothing_is_stored(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    _, user_id = await signed_in(client)
    token = csrf_token_of(await client.get(PAGE))
    for credential in ("not json", "[1, 2]", json.dumps({"id": "x"})):
        refused = await client.post(
            f"{PAGE}/passkeys", data={"csrf_token": token, "name": "Key", "credential": credential}
        )
        assert refused.status_code == 400, refused.text
        assert "The passkey could not be verified." in refused.text
    # An answer from another origin (a phishing page) to genuine options.
    options = await client.post(f"{PAGE}/passkeys/options", data={"csrf_token": token})
    foreign = authenticator_for(client).create(options.json(), origin="https://evil.example")
    refused = await client.post(
        f"{PAGE}/passkeys", data={"csrf_token": token, "name": "Key", "credential": json.dumps(foreign)}
    )
    assert refused.status_code == 400
    assert await passkey_rows(db_session, user_id) == []


async def test_a_passkey_is_renamed_and_after_a_confirmation_removed_with_a_mail(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, user_id = await signed_in(client)
    await add_passkey(client, authenticator_for(client), "Phone")
    [(passkey_id, _)] = await passkey_rows(db_session, user_id)

    renamed = await post(client, f"{PAGE}/passkeys/{passkey_id}/rename", name="  Old phone  ")
    assert renamed.status_code == 303 and renamed.headers["location"] == f"{PAGE}?done=passkey_renamed"
    assert await passkey_rows(db_session, user_id) == [(passkey_id, "Old phone")]
    assert await audit_of(db_session, user_id, "passkey.renamed")

    asked = await post(client, f"{PAGE}/passkeys/{passkey_id}/remove")
    assert asked.status_code == 200 and "“Old phone”" in asked.text
    assert await passkey_rows(db_session, user_id) == [(passkey_id, "Old phone")]
    removed = await client.post(
        f"{PAGE}/passkeys/{passkey_id}/remove", data={"csrf_token": csrf_token_of(asked), "confirm": "yes"}
    )
    assert removed.status_code == 303 and removed.headers["location"] == f"{PAGE}?done=passkey_removed"
    assert await passkey_rows(db_session, user_id) == []
    assert len(await mails_to(db_session, email, "passkey_removed")) == 1
    assert "No passkeys yet." in (await client.get(PAGE)).text

    # Someone else's (or a missing) passkey: a 404 page, nothing touched.
    missing = await post(client, f"{PAGE}/passkeys/{uuid.uuid4()}/remove", confirm="yes")
    assert missing.status_code == 404
    assert "This passkey does not exist (any more)." in missing.text


# --- The recent sign-in ---


async def test_with_a_sign_in_older_than_mfa_reauth_seconds_every_change_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    _, user_id = await signed_in(client)
    await enrol_totp(client, clock)
    await add_passkey(client, authenticator_for(client), "Phone")
    [(passkey_id, _)] = await passkey_rows(db_session, user_id)
    token = csrf_token_of(await client.get(PAGE))
    clock.advance(timedelta(seconds=settings_of(client).MFA_REAUTH_SECONDS + 1))

    page = await client.get(PAGE)
    assert page.status_code == 200
    assert "Changes here need a sign-in from the last 5 minutes." in page.text
    assert 'href="/signin?return_to=%2Faccount%2Fsecurity"' in page.text and "Sign in again" in page.text
    assert 'action="/account/security/totp/remove"' not in page.text, "no change is offered"
    assert "passkey-register.js" not in page.text

    before = await factor_state(db_session, user_id)
    changes = [
        (f"{PAGE}/totp", {}),
        (f"{PAGE}/totp/confirm", {"code": "123456"}),
        (f"{PAGE}/totp/remove", {"confirm": "yes"}),
        (f"{PAGE}/totp/remove", {}),
        (f"{PAGE}/recovery-codes", {}),
        (f"{PAGE}/passkeys", {"name": "Key", "credential": "{}"}),
        (f"{PAGE}/passkeys/{passkey_id}/rename", {"name": "Renamed"}),
        (f"{PAGE}/passkeys/{passkey_id}/remove", {"confirm": "yes"}),
        (f"{PAGE}/passkeys/{passkey_id}/remove", {}),
    ]
    for path, fields in changes:
        refused = await client.post(path, data={"csrf_token": token, **fields})
        assert refused.status_code == 403, (path, refused.text)
        assert "sign in again first" in refused.text
    options = await client.post(f"{PAGE}/passkeys/options", data={"csrf_token": token})
    assert options.status_code == 403
    assert options.json()["error"] == "reauthentication_required"
    assert await factor_state(db_session, user_id) == before


async def test_signing_in_again_makes_the_sign_in_recent_again(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    email, user_id = await signed_in(client)
    clock.advance(timedelta(seconds=settings_of(client).MFA_REAUTH_SECONDS + 1))
    token = csrf_token_of(await client.get("/signin"))  # the stale page offers no form
    assert (await client.post(f"{PAGE}/totp", data={"csrf_token": token})).status_code == 403
    again = await sign_in(client, email, return_to=PAGE)
    assert again.status_code == 303 and again.headers["location"] == PAGE
    started = await post(client, f"{PAGE}/totp")
    assert started.status_code == 200, started.text
    secret_on(started)
    # The new sign-in replaced the browser session: one is live.
    live = await db_session.scalar(
        text("SELECT count(*) FROM browser_sessions WHERE user_id = :u AND ended_at IS NULL"), {"u": user_id}
    )
    assert live == 1


async def test_an_admin_held_back_by_mfa_required_for_admins_enrols_a_factor_on_the_page(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"MFA_REQUIRED_FOR_ADMINS": True})
    email, tokens = await signed_up(client)
    await make_admin(db_session, email)
    refused = await client.get("/admin/users", headers=tokens.bearer)
    assert refused.json()["error"] == "mfa_required_for_admins"
    # The page needs only the browser session: the admin signs in with the password and enrols.
    assert (await sign_in(client, email)).status_code == 303
    _, codes = await enrol_totp(client, clock)
    assert len(codes) == 10
    assert "On since" in (await client.get(PAGE)).text


@pytest.mark.parametrize("language", ["de"])
async def test_the_page_speaks_the_browsers_language(client: httpx.AsyncClient, language: str) -> None:
    await signed_in(client)
    page = await client.get(PAGE, headers={"Accept-Language": language})
    assert page.status_code == 200
    assert f'<html lang="{language}">' in page.text
    assert "Passkeys" in page.text and "Authenticator-App" in page.text
