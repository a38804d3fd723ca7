"""Issue 12: a passkey as the second factor of a password login. The client asks
`POST /auth/mfa/webauthn/options` with its mfa_token, answers with the software authenticator
(tests/passkeys/authenticator.py, real signatures) and completes with the mfa grant's `webauthn` field;
the tokens' `amr` (RFC 8176) says `hwk` or `swk`, and `mfa`."""

import json

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.auth.helpers import password_grant, signed_up
from tests.mfa.helpers import audit_of, claims_of, mfa_grant, mfa_token_of
from tests.passkeys.authenticator import SoftAuthenticator, b64url
from tests.passkeys.test_passkeys import authenticator_for, enrol, user_named

OPTIONS = "/auth/mfa/webauthn/options"


async def with_passkey(client: httpx.AsyncClient, **kwargs: bool) -> tuple[str, SoftAuthenticator]:
    email, tokens = await signed_up(client)
    authenticator = authenticator_for(client, **kwargs)
    await enrol(client, tokens, authenticator)
    return email, authenticator


async def assertion_for(client: httpx.AsyncClient, mfa_token: str, authenticator: SoftAuthenticator) -> str:
    options = await client.post(OPTIONS, json={"mfa_token": mfa_token})
    assert options.status_code == 200, options.text
    assert options.headers["cache-control"] == "no-store"
    return json.dumps(authenticator.get(options.json()))


async def test_a_passkey_completes_the_mfa_grant_with_hwk_and_mfa_in_amr_rfc_8176(
    client: httpx.AsyncClient,
) -> None:
    email, authenticator = await with_passkey(client)
    answer = await password_grant(client, email)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "mfa_required"
    assert "webauthn" in answer.json()["methods"]
    mfa_token = answer.json()["mfa_token"]

    options = await client.post(OPTIONS, json={"mfa_token": mfa_token})
    assert options.status_code == 200, options.text
    assert [c["id"] for c in options.json()["allowCredentials"]] == [b64url(authenticator.credential_id)]
    completed = await mfa_grant(client, mfa_token, webauthn=json.dumps(authenticator.get(options.json())))
    assert completed.status_code == 200, completed.text
    amr = claims_of(completed.json()["access_token"])["amr"]
    assert "pwd" in amr and "hwk" in amr and "mfa" in amr and "swk" not in amr


async def test_a_synced_passkey_counts_as_swk_in_amr_rfc_8176(client: httpx.AsyncClient) -> None:
    email, authenticator = await with_passkey(client, backup_eligible=True, counting=False)
    mfa_token = await mfa_token_of(client, email)
    completed = await mfa_grant(
        client, mfa_token, webauthn=await assertion_for(client, mfa_token, authenticator)
    )
    assert completed.status_code == 200, completed.text
    amr = claims_of(completed.json()["access_token"])["amr"]
    assert "swk" in amr and "mfa" in amr and "hwk" not in amr


async def test_a_replayed_webauthn_assertion_is_refused_by_the_mfa_grant(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, authenticator = await with_passkey(client)
    first_token = await mfa_token_of(client, email)
    assertion = await assertion_for(client, first_token, authenticator)
    assert (await mfa_grant(client, first_token, webauthn=assertion)).status_code == 200

    # The same assertion for a new login of the same account: its challenge was answered, and was bound
    # to the first login's mfa_token.
    second_token = await mfa_token_of(client, email)
    replayed = await mfa_grant(client, second_token, webauthn=assertion)
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"] == "invalid_grant"
    # The second login can still complete with a fresh assertion: the refusal did not spend its token.
    fresh = await mfa_grant(
        client, second_token, webauthn=await assertion_for(client, second_token, authenticator)
    )
    assert fresh.status_code == 200, fresh.text


async def test_an_assertion_answering_another_logins_options_is_refused(client: httpx.AsyncClient) -> None:
    email, authenticator = await with_passkey(client)
    one = await mfa_token_of(client, email)
    other = await mfa_token_of(client, email)
    refused = await mfa_grant(client, other, webauthn=await assertion_for(client, one, authenticator))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"


async def test_an_assertion_from_another_users_passkey_is_refused_by_the_mfa_grant(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    email, _ = await with_passkey(client)
    _, someone_elses = await with_passkey(client)
    mfa_token = await mfa_token_of(client, email)
    refused = await mfa_grant(
        client, mfa_token, webauthn=await assertion_for(client, mfa_token, someone_elses)
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    user = await user_named(db_session, email)
    assert [reason for reason, _ in await audit_of(db_session, user.id, "passkey.assertion_failed")] == [
        "unknown_credential"
    ]


async def test_webauthn_options_refuse_an_unknown_mfa_token(client: httpx.AsyncClient) -> None:
    refused = await client.post(OPTIONS, json={"mfa_token": "not-a-token"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"


async def test_a_malformed_webauthn_field_is_a_clear_invalid_grant(client: httpx.AsyncClient) -> None:
    email, _ = await with_passkey(client)
    mfa_token = await mfa_token_of(client, email)
    refused = await mfa_grant(client, mfa_token, webauthn="{not json")
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
