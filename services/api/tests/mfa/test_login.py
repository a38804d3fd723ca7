"""A password login of an account with a second factor: `mfa_required` and nothing issued, then the mfa
grant (RFC 6749 §4.5 extension grant) with the mfa_token, whose tokens say how the user authenticated
(RFC 8176 `amr`, OIDC Core `acr`)."""

from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.opaque_tokens import digest
from app.mfa import totp
from tests.admin.helpers import admin_account
from tests.auth.helpers import password_grant, refresh_grant, signed_up
from tests.clients.helpers import basic, password_grant_as, register_client
from tests.mfa.helpers import MFA_GRANT, audit_of, claims_of, enrolled, mfa_grant, mfa_token_of
from tests.statements import statements_on
from tests.web.helpers import sign_in


async def test_a_password_login_with_a_factor_answers_mfa_required_and_issues_nothing(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    user = await enrolled(client, clock)
    sessions_before = await db_session.scalar(
        text("SELECT count(*) FROM auth_sessions WHERE user_id = :u"), {"u": user.user_id}
    )
    answer = await password_grant(client, user.email)
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert set(body) == {"error", "error_description", "mfa_token", "methods"}
    assert body["error"] == "mfa_required"
    assert body["methods"] == ["otp", "recovery_code"]
    assert len(body["mfa_token"]) >= 40
    assert answer.headers["cache-control"] == "no-store"
    assert "set-cookie" not in answer.headers  # no device cookie before the login is complete
    sessions_after = await db_session.scalar(
        text("SELECT count(*) FROM auth_sessions WHERE user_id = :u"), {"u": user.user_id}
    )
    assert sessions_after == sessions_before
    stored = await db_session.scalar(
        text("SELECT count(*) FROM mfa_tokens WHERE token_hash = sha256(convert_to(:t, 'UTF8'))"),
        {"t": body["mfa_token"]},
    )
    assert stored == 1  # only the digest is stored
    assert await audit_of(db_session, user.user_id, "login.mfa_required")


async def test_a_password_login_with_a_factor_gives_its_attempt_back_in_the_mfa_tokens_statement(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession, connection: AsyncConnection
) -> None:
    """The password was right, so the attempt counted before the hash is given back: in the one statement
    that stores the mfa_token and its audit row, the only write after the hash."""
    user = await enrolled(client, clock)
    client.cookies.clear()  # an untrusted client: the account's own counter, not the device's
    driver = (await connection.get_raw_connection()).driver_connection
    with statements_on("login_throttles", "mfa_tokens", driver=driver) as statements:
        answer = await password_grant(client, user.email)
    assert answer.status_code == 403, answer.text
    stored = [statement for statement in statements if "INSERT INTO mfa_tokens" in statement]
    assert len(stored) == 1, statements
    assert stored[0].startswith("WITH uncounted_attempt AS ( UPDATE login_throttles"), stored
    counted = "SELECT failures FROM login_throttles WHERE email = :e AND kind = 'login'"
    assert (await db_session.scalars(text(counted), {"e": user.email})).all() in ([], [0])


async def test_a_login_reads_every_second_factor_method_in_one_query(
    client: httpx.AsyncClient, clock: ManualClock, connection: AsyncConnection
) -> None:
    """Every password login asks which second factors the account has: in the query that reads the
    account, one round trip for both and all methods, with a factor (the answer lists them) and without
    (the login completes)."""
    user = await enrolled(client, clock)
    plain_email, _ = await signed_up(client)
    driver = (await connection.get_raw_connection()).driver_connection
    with statements_on("mfa_totp", "mfa_recovery_codes", "passkeys", driver=driver) as statements:
        with_factor = await password_grant(client, user.email)
        assert with_factor.status_code == 403 and with_factor.json()["methods"] == ["otp", "recovery_code"]
        assert len(statements) == 1, statements
        statements.clear()
        assert (await password_grant(client, plain_email)).status_code == 200
        assert len(statements) == 1, statements
    assert all(table in statements[0] for table in ("mfa_totp", "mfa_recovery_codes", "passkeys"))
    assert "FROM users" in statements[0], statements


async def test_a_finished_mfa_login_forgets_the_password_and_factor_failures_in_one_statement(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession, connection: AsyncConnection
) -> None:
    """A wrong password and a wrong code each count against the account (kinds `login` and `mfa`); the
    login that then completes with the right code clears both counts, with one `DELETE`, in the statement
    that starts its session."""
    user = await enrolled(client, clock)
    client.cookies.clear()  # an untrusted client: the account's own counters, not the device's
    assert (await password_grant(client, user.email, "wrong-password-123456")).status_code == 400
    clock.advance(timedelta(seconds=5))
    token = await mfa_token_of(client, user.email)
    assert (await mfa_grant(client, token, otp="000000")).status_code == 400
    clock.advance(timedelta(seconds=5))
    counted = "SELECT kind FROM login_throttles WHERE email = :e ORDER BY kind"
    assert (await db_session.scalars(text(counted), {"e": user.email})).all() == ["login", "mfa"]
    driver = (await connection.get_raw_connection()).driver_connection
    with statements_on("login_throttles", driver=driver) as statements:
        answer = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))
    assert answer.status_code == 200, answer.text
    deletes = [s for s in statements if "DELETE FROM login_throttles" in s]
    assert len(deletes) == 1, statements
    assert "INSERT INTO auth_sessions" in deletes[0], deletes
    assert (await db_session.scalars(text(counted), {"e": user.email})).all() == []


async def test_the_mfa_grant_reads_its_ticket_account_device_token_and_authenticator_in_one_statement(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession, connection: AsyncConnection
) -> None:
    """The second step reads the live mfa_token, its account, the device token its first step presented and
    the account's TOTP authenticator in one SELECT; the finished login spends that device token for a new
    one and is audited as from a known device."""
    user = await enrolled(client, clock)
    presented = client.cookies.get("pyauth_device")
    assert presented, "the sign-up's login left a device cookie"
    token = await mfa_token_of(client, user.email)
    driver = (await connection.get_raw_connection()).driver_connection
    with statements_on("mfa_tokens", "users", "login_devices", "mfa_totp", driver=driver) as statements:
        answer = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))
    assert answer.status_code == 200, answer.text
    reads = [statement for statement in statements if statement.startswith("SELECT")]
    assert len(reads) == 1, statements
    joined = ("FROM mfa_tokens", "JOIN users", "JOIN login_devices", "JOIN mfa_totp")
    assert all(table in reads[0] for table in joined), reads
    issued = answer.json()["device_token"]
    stored = set(
        await db_session.scalars(
            text("SELECT token_hash FROM login_devices WHERE user_id = :u"), {"u": user.user_id}
        )
    )
    assert digest(presented) not in stored and digest(issued) in stored
    assert (await audit_of(db_session, user.user_id, "login.succeeded"))[-1] == (None, {"known_device": True})


async def test_a_wrong_password_answers_the_same_with_or_without_a_factor(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    plain_email, _ = await signed_up(client)
    with_factor = await password_grant(client, user.email, "wrong-password-123456")
    without = await password_grant(client, plain_email, "wrong-password-123456")
    assert with_factor.status_code == without.status_code == 400
    assert with_factor.json() == without.json()


async def test_rfc8176_the_mfa_grant_issues_tokens_whose_amr_has_mfa_and_a_refresh_keeps_it(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    token = await mfa_token_of(client, user.email)
    answer = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    claims = claims_of(body["access_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "urn:pyauth:acr:mfa"
    assert claims["sub"] == str(user.user_id)
    assert body["refresh_token"] and body.get("device_token")
    refreshed = await refresh_grant(client, body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_oidc_a_password_only_token_says_acr_pwd(client: httpx.AsyncClient) -> None:
    _, tokens = await signed_up(client)
    claims = claims_of(tokens.access)
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:pyauth:acr:pwd"


async def test_an_mfa_token_is_single_use(client: httpx.AsyncClient, clock: ManualClock) -> None:
    user = await enrolled(client, clock)
    token = await mfa_token_of(client, user.email)
    assert (await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))).status_code == 200
    clock.advance(timedelta(seconds=30))
    again = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_an_mfa_token_expires(
    client: httpx.AsyncClient, clock: ManualClock, settings: Settings
) -> None:
    user = await enrolled(client, clock)
    token = await mfa_token_of(client, user.email)
    clock.advance(timedelta(seconds=settings.MFA_TOKEN_TTL_SECONDS + 1))
    late = await mfa_grant(client, token, otp=totp.code_at(user.secret, clock.now()))
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


async def test_a_made_up_mfa_token_is_refused_and_audited(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    answer = await mfa_grant(client, "x" * 43, otp="123456")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    reasons = await db_session.scalars(
        text("SELECT reason FROM audit_events WHERE event = 'login.mfa_failed' AND user_id IS NULL")
    )
    assert "invalid_mfa_token" in list(reasons)


async def test_rfc6749_the_mfa_grant_takes_exactly_one_method(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    user = await enrolled(client, clock)
    token = await mfa_token_of(client, user.email)
    both = await mfa_grant(
        client, token, otp=totp.code_at(user.secret, clock.now()), recovery_code=user.recovery_codes[0]
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    neither = await mfa_grant(client, token)
    assert neither.status_code == 400 and neither.json()["error"] == "invalid_request"
    missing_token = await client.post(
        "/auth/token", data={"grant_type": "urn:pyauth:params:oauth:grant-type:mfa", "otp": "123456"}
    )
    assert missing_token.status_code == 400 and missing_token.json()["error"] == "invalid_request"


async def test_the_hosted_sign_in_of_an_account_with_a_factor_starts_no_browser_session(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    """The password alone never signs in there: the hosted pages answer the second page
    (`tests/mfa/test_hosted_second_step.py`) and no SSO session starts before the second factor."""
    user = await enrolled(client, clock)
    answer = await sign_in(client, user.email)
    assert answer.status_code != 303
    browser_sessions = await db_session.scalar(
        text("SELECT count(*) FROM browser_sessions WHERE user_id = :u"), {"u": user.user_id}
    )
    assert browser_sessions == 0


async def test_an_mfa_token_is_bound_to_the_client_of_the_first_step(
    client: httpx.AsyncClient, clock: ManualClock, db_session: AsyncSession
) -> None:
    admin = await admin_account(client, db_session)
    registered = await register_client(client, admin, grant_types=["password", "refresh_token"])
    credentials = basic(registered["client_id"], registered["client_secret"])
    user = await enrolled(client, clock)
    first = await password_grant_as(client, user.email, headers=credentials)
    assert first.status_code == 403 and first.json()["error"] == "mfa_required"
    code = totp.code_at(user.secret, clock.now())
    as_builtin = await mfa_grant(client, first.json()["mfa_token"], otp=code)  # the built-in client
    assert as_builtin.status_code == 400 and as_builtin.json()["error"] == "invalid_grant"
    reasons = [reason for reason, _ in await audit_of(db_session, user.user_id, "login.mfa_failed")]
    assert reasons == ["mfa_token_of_another_client"]
    as_first = await client.post(
        "/auth/token",
        data={"grant_type": MFA_GRANT, "mfa_token": first.json()["mfa_token"], "otp": code},
        headers=credentials,
    )
    assert as_first.status_code == 200, as_first.text
    assert claims_of(as_first.json()["access_token"])["client_id"] == registered["client_id"]
