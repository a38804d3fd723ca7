"""Access tokens: what is issued, and every way a token must be refused (RFC 8725, RFC 9068)."""

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.auth.issuing import issue_access_token
from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys import tokens
from app.keys.keyring import REFRESH_INTERVAL, KeyRing
from app.keys.tokens import (
    MAX_HEADER_LENGTH,
    MAX_TOKEN_LENGTH,
    AccessClaims,
    InvalidAccessToken,
    VerifiedToken,
    VerifiedTokens,
    decode_access_token,
    verify_access_token,
    verify_issued_token,
)
from tests.conftest import make_settings

USER_ID = uuid.UUID("5f0c6a3e-2b1d-4c8e-9a7f-1e2d3c4b5a69")
SESSION_ID = uuid.UUID("0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json_b64(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(settings: Settings, clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.JWT_AUDIENCE,
        "sub": "user-1",
        "sid": "session-1",
        "jti": "jti-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _sign(keyring: KeyRing, claims: dict[str, Any], **header: Any) -> str:
    """Signed with the real current key: only the header or claims under test are wrong."""
    key = keyring.current
    headers = {"kid": key.kid, "typ": "at+jwt", **header}
    if headers["kid"] is None:
        del headers["kid"]  # typ=None is left to PyJWT, which then omits it
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=headers)


def _refuse(keyring: KeyRing, settings: Settings, token: str, clock: ManualClock) -> InvalidAccessToken:
    with pytest.raises(InvalidAccessToken) as refused:
        decode_access_token(keyring, settings, token, now=clock.now())
    return refused.value


async def test_issue_and_decode_round_trip(keyring: KeyRing, settings: Settings, clock: ManualClock) -> None:
    token, expires_in = issue_access_token(
        keyring,
        settings,
        subject="user-1",
        session_id="session-1",
        now=clock.now(),
        extra_claims={"email_verified": True},
    )

    assert expires_in == settings.ACCESS_TOKEN_TTL_SECONDS
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": keyring.current.kid, "typ": "at+jwt"}
    claims = decode_access_token(keyring, settings, token, now=clock.now())
    assert isinstance(claims, AccessClaims)
    now = int(clock.now().timestamp())
    assert claims.sub == "user-1"
    assert claims.sid == "session-1"
    assert claims.exp == now + settings.ACCESS_TOKEN_TTL_SECONDS
    assert claims.expires_at == clock.now() + timedelta(seconds=settings.ACCESS_TOKEN_TTL_SECONDS)
    assert dict(claims.claims) == {
        "iss": settings.issuer,
        "aud": settings.JWT_AUDIENCE,
        "sub": "user-1",
        "sid": "session-1",
        "client_id": "pyauth",  # RFC 9068 §2.2: the built-in client unless another is named
        "jti": claims.jti,
        "iat": now,
        "nbf": now,
        "exp": now + settings.ACCESS_TOKEN_TTL_SECONDS,
        "email_verified": True,
    }
    again, _ = issue_access_token(
        keyring, settings, subject="user-1", session_id="session-1", now=clock.now()
    )
    assert decode_access_token(keyring, settings, again, now=clock.now()).jti != claims.jti
    assert len(claims.jti) >= 16


async def test_extra_claims_cannot_override_registered_claims(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    with pytest.raises(ValueError, match="sub"):
        issue_access_token(
            keyring, settings, subject="u", session_id="s", now=clock.now(), extra_claims={"sub": "admin"}
        )


async def test_eddsa_round_trip(sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock) -> None:
    settings = make_settings(JWT_ALGORITHM="EdDSA")
    keyring = await KeyRing.load(sessionmaker, settings, clock)
    token, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s", now=clock.now())

    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    # Next to the RSA key of RS256 ID tokens (issue 11), which signs no access token.
    assert [(jwk["kty"], jwk.get("crv"), jwk["alg"]) for jwk in keyring.jwks()["keys"]] == [
        ("OKP", "Ed25519", "EdDSA"),
        ("RSA", None, "RS256"),
    ]
    assert "y" not in keyring.jwks()["keys"][0]
    assert decode_access_token(keyring, settings, token, now=clock.now()).sub == "user-1"


async def test_the_hand_signed_control_token_is_accepted(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    # The refusal tests below change one thing each in this token.
    token = _sign(keyring, _claims(settings, clock))
    assert decode_access_token(keyring, settings, token, now=clock.now()).sub == "user-1"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_both_spellings_of_the_access_token_type_are_accepted(
    keyring: KeyRing, settings: Settings, clock: ManualClock, typ: str
) -> None:
    token = _sign(keyring, _claims(settings, clock), typ=typ)
    assert decode_access_token(keyring, settings, token, now=clock.now()).sub == "user-1"


async def test_an_expired_token_is_refused(keyring: KeyRing, settings: Settings, clock: ManualClock) -> None:
    token, expires_in = issue_access_token(keyring, settings, subject="u", session_id="s", now=clock.now())
    clock.advance(timedelta(seconds=expires_in - 1))
    decode_access_token(keyring, settings, token, now=clock.now())
    clock.advance(timedelta(seconds=1))
    _refuse(keyring, settings, token, clock)


async def test_a_token_not_yet_valid_is_refused(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    within_skew, _ = issue_access_token(
        keyring, settings, subject="u", session_id="s", now=clock.now() + timedelta(seconds=20)
    )
    decode_access_token(keyring, settings, within_skew, now=clock.now())
    future, _ = issue_access_token(
        keyring, settings, subject="u", session_id="s", now=clock.now() + timedelta(minutes=2)
    )
    _refuse(keyring, settings, future, clock)


async def test_nbf_in_the_future_is_refused_even_with_a_current_iat(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    now = int(clock.now().timestamp())
    _refuse(keyring, settings, _sign(keyring, _claims(settings, clock, nbf=now + 120)), clock)


async def test_iat_in_the_future_is_refused_even_with_a_current_nbf(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    now = int(clock.now().timestamp())
    decode_access_token(
        keyring, settings, _sign(keyring, _claims(settings, clock, iat=now + 25)), now=clock.now()
    )
    _refuse(keyring, settings, _sign(keyring, _claims(settings, clock, iat=now + 120)), clock)


async def test_a_tampered_payload_is_refused(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    token, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s", now=clock.now())
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    _refuse(keyring, settings, f"{header}.{_json_b64(claims)}.{signature}", clock)


async def test_a_tampered_payload_is_refused_after_the_original_was_verified(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    """The remembered signatures hold for the exact token only: the original's signature under a payload of
    the attacker's choosing is checked, and fails."""
    token, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s", now=clock.now())
    assert decode_access_token(keyring, settings, token, now=clock.now()).sub == "user-1"
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    _refuse(keyring, settings, f"{header}.{_json_b64(claims)}.{signature}", clock)
    assert decode_access_token(keyring, settings, token, now=clock.now()).sub == "user-1"


async def _verified_then_its_key_deleted(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    rotate: Callable[[], Awaitable[str]],
    connection: AsyncConnection,
) -> tuple[str, str]:
    """A token verified (so remembered), then its key rotated out and deleted by another process: the
    token and its key's kid."""
    token, _ = issue_access_token(keyring, settings, subject="u", session_id="s", now=clock.now())
    old_kid = keyring.current.kid
    await verify_access_token(keyring, settings, token, now=clock.now())
    await rotate()
    await connection.execute(text("DELETE FROM signing_keys WHERE kid = :kid"), {"kid": old_kid})
    return token, old_kid


async def test_a_verified_token_is_refused_once_its_key_left_the_ring(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    rotate: Callable[[], Awaitable[str]],
    connection: AsyncConnection,
) -> None:
    token, old_kid = await _verified_then_its_key_deleted(keyring, settings, clock, rotate, connection)
    await keyring.refresh()
    assert keyring.key_for(old_kid) is None
    _refuse(keyring, settings, token, clock)


async def test_a_verified_token_is_refused_after_its_key_left_the_ring_at_the_periodic_refresh(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    rotate: Callable[[], Awaitable[str]],
    connection: AsyncConnection,
) -> None:
    """A key another process removed is dropped by `verify_access_token` itself, at most REFRESH_INTERVAL
    later, with no refresh called by anyone else."""
    token, old_kid = await _verified_then_its_key_deleted(keyring, settings, clock, rotate, connection)
    clock.advance(REFRESH_INTERVAL)
    with pytest.raises(InvalidAccessToken):
        await verify_access_token(keyring, settings, token, now=clock.now())
    assert keyring.key_for(old_kid) is None


async def test_a_verified_token_is_checked_again_against_another_key_under_its_kid(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    """Not a state the ring reaches by itself (key ids are random): the remembered signature names the
    public key that verified it, and counts for no other."""
    token, _ = issue_access_token(keyring, settings, subject="u", session_id="s", now=clock.now())
    decode_access_token(keyring, settings, token, now=clock.now())
    kid = keyring.current.kid
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    keyring._keys = {**keyring._keys, kid: dataclasses.replace(keyring._keys[kid], public_key=other)}
    _refuse(keyring, settings, token, clock)


async def test_a_token_remembered_for_any_audience_is_still_checked_against_this_one(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    """RFC 9068 §4: the audience. Introspection verifies a token for any audience and without `sid`;
    the token it remembered is refused where this resource server's audience and a session are required."""
    other_audience = _sign(keyring, _claims(settings, clock, aud="https://other.example"))
    without_session = _sign(keyring, _claims(settings, clock, sid=None, jti="jti-2"))
    for token in (other_audience, without_session):
        assert (await verify_issued_token(keyring, settings, token, now=clock.now()))["sub"] == "user-1"
        _refuse(keyring, settings, token, clock)
        assert (await verify_issued_token(keyring, settings, token, now=clock.now()))["sub"] == "user-1"


@pytest.mark.parametrize(
    "elsewhere",
    [{"PUBLIC_BASE_URL": "http://127.0.0.1:9999"}, {"JWT_AUDIENCE": "another-resource"}],
    ids=["another issuer", "another audience"],
)
async def test_a_remembered_token_is_checked_again_for_another_issuer_or_audience(
    keyring: KeyRing, settings: Settings, clock: ManualClock, elsewhere: dict[str, str]
) -> None:
    token = _sign(keyring, _claims(settings, clock))
    assert decode_access_token(keyring, settings, token, now=clock.now()).sub == "user-1"
    other = make_settings(**elsewhere)
    assert (other.issuer, other.JWT_AUDIENCE) != (settings.issuer, settings.JWT_AUDIENCE)
    _refuse(keyring, other, token, clock)


async def test_a_remembered_token_is_checked_again_for_other_required_claims(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    """The checks a remembered token passed count for the same issuer, audience and required claims only."""
    token = _sign(keyring, _claims(settings, clock, sid=None))
    decode = functools.partial(
        tokens._decode, keyring, settings, token, now=clock.now(), audience=settings.JWT_AUDIENCE
    )
    for required in (tokens.ISSUED_CLAIMS, tokens.REQUIRED_CLAIMS, tokens.ISSUED_CLAIMS):
        if "sid" in required:
            with pytest.raises(InvalidAccessToken):
                decode(required=required)
        else:
            assert decode(required=required).claims["sub"] == "user-1"


@pytest.mark.parametrize(
    ("sub", "sid", "subject_id", "session_id"),
    [
        (str(USER_ID), str(SESSION_ID), USER_ID, SESSION_ID),
        (str(USER_ID).upper(), "{" + str(SESSION_ID) + "}", None, SESSION_ID),
        ("user-1", "session-1", None, None),
    ],
    ids=["canonical", "not canonical", "not UUIDs"],
)
async def test_the_subject_and_session_ids_are_read_from_the_claims(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    sub: str,
    sid: str,
    subject_id: uuid.UUID | None,
    session_id: uuid.UUID | None,
) -> None:
    """`subject_id` only for a user id in its canonical form, as the caller checks compare `sub`."""
    token = _sign(keyring, _claims(settings, clock, sub=sub, sid=sid))
    for _ in range(2):  # verified, then remembered
        claims = decode_access_token(keyring, settings, token, now=clock.now())
        assert (claims.sub, claims.sid) == (sub, sid)
        assert (claims.subject_id, claims.session_id) == (subject_id, session_id)


def test_the_remembered_tokens_are_bounded_oldest_first(keyring: KeyRing) -> None:
    verified = VerifiedTokens(size=2)
    key = keyring.key_for(keyring.current.kid)
    assert key is not None
    for digest in (b"a", b"b", b"c"):
        verified.remember(digest, VerifiedToken(key.public_key, {"sub": digest.decode()}))
    assert len(verified) == 2
    assert verified.remembered(b"a", key) is None
    remembered = verified.remembered(b"c", key)
    assert remembered is not None
    assert remembered.claims == {"sub": "c"}


async def test_alg_none_is_refused(keyring: KeyRing, settings: Settings, clock: ManualClock) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": keyring.current.kid}
    token = f"{_json_b64(header)}.{_json_b64(_claims(settings, clock))}."
    _refuse(keyring, settings, token, clock)


async def test_hs256_signed_with_the_public_key_as_secret_is_refused(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    # The classic algorithm confusion: a verifier that lets the token choose HS256 would use the
    # public key, which everyone has, as the HMAC secret.
    kid = keyring.current.kid
    published = keyring.key_for(kid)
    assert published is not None
    public_pem = published.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_json_b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{_json_b64(_claims(settings, clock))}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    _refuse(keyring, settings, f"{signing_input}.{_b64(signature)}", clock)


async def test_a_token_naming_another_keys_algorithm_is_refused(
    keyring: KeyRing, sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    # Both keys are published; an ES256 token relabelled with the EdDSA key's kid must not verify.
    settings = make_settings(JWT_ALGORITHM="EdDSA")
    both = await KeyRing.load(sessionmaker, settings, clock)
    es256_token = _sign(keyring, _claims(settings, clock))
    decode_access_token(both, settings, es256_token, now=clock.now())
    relabelled = _sign(keyring, _claims(settings, clock), kid=both.current.kid)
    _refuse(both, settings, relabelled, clock)


async def test_an_unknown_kid_is_refused(keyring: KeyRing, settings: Settings, clock: ManualClock) -> None:
    _refuse(keyring, settings, _sign(keyring, _claims(settings, clock), kid="not-a-key-we-have"), clock)
    _refuse(keyring, settings, _sign(keyring, _claims(settings, clock), kid=None), clock)


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}},
        {"x5c": ["MIIB"]},
        {"typ": "JWT"},
        {"typ": None},
        {"typ": "at+jwt; refresh"},
    ],
    ids=["jku", "x5u", "jwk", "x5c", "typ JWT", "typ missing", "typ other"],
)
async def test_a_validly_signed_token_with_a_refused_header(
    keyring: KeyRing, settings: Settings, clock: ManualClock, header: dict[str, Any]
) -> None:
    _refuse(keyring, settings, _sign(keyring, _claims(settings, clock), **header), clock)


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "another-service"},
        {"iss": "https://attacker.example"},
        {"iss": None},
        {"aud": None},
        {"sub": None},
        {"sid": None},
        {"jti": None},
        {"exp": None},
        {"iat": None},
        {"nbf": None},
        {"sub": ""},
        {"sid": 42},
        {"exp": "9999999999"},
        {"exp": True},
        {"exp": 10**400},
        {"nbf": 1e400},
    ],
    ids=[
        "wrong aud",
        "wrong iss",
        "no iss",
        "no aud",
        "no sub",
        "no sid",
        "no jti",
        "no exp",
        "no iat",
        "no nbf",
        "empty sub",
        "sid not a string",
        "exp a string",
        "exp a boolean",
        "exp too large",
        "nbf infinite",
    ],
)
async def test_a_validly_signed_token_with_refused_claims(
    keyring: KeyRing, settings: Settings, clock: ManualClock, overrides: dict[str, Any]
) -> None:
    _refuse(keyring, settings, _sign(keyring, _claims(settings, clock, **overrides)), clock)


async def test_a_refusal_is_generic_to_the_client_and_logged_without_the_token(
    keyring: KeyRing, settings: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    expired, _ = issue_access_token(
        keyring, settings, subject="u", session_id="s", now=clock.now() - timedelta(hours=1)
    )
    wrong_aud = _sign(keyring, _claims(settings, clock, aud="other"))
    with caplog.at_level(logging.DEBUG, logger="pyauth.tokens"):
        first = _refuse(keyring, settings, expired, clock)
        second = _refuse(keyring, settings, wrong_aud, clock)

    for refused in (first, second):
        assert refused.status_code == 401
        assert refused.code == "invalid_token"
        assert dict(refused.headers or {}) == {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    assert first.detail == second.detail
    assert first.detail == InvalidAccessToken.message
    reasons = [record.getMessage() for record in caplog.records if record.name == "pyauth.tokens"]
    assert reasons == [
        "access token refused: expired",
        "access token refused: aud does not name this audience",
    ]
    assert not any(
        expired.split(".")[1] in message or wrong_aud.split(".")[1] in message for message in reasons
    )


async def test_garbage_is_refused(keyring: KeyRing, settings: Settings, clock: ManualClock) -> None:
    for token in ["", "abc", "a.b.c", "x" * 10_000, f"{_json_b64({'typ': 'at+jwt'})}.e30.", "..."]:
        _refuse(keyring, settings, token, clock)


def _nested_arrays_header_token(depth: int) -> str:
    """A token whose header segment is `depth` nested JSON arrays: valid JSON, within MAX_TOKEN_LENGTH,
    deep enough to exhaust the JSON parser's recursion limit."""
    return f"{_b64(b'[' * depth + b']' * depth)}.e30.c2ln"


async def test_a_token_header_over_the_size_cap_is_refused_before_parsing(
    keyring: KeyRing, settings: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    token = _nested_arrays_header_token(3000)
    assert len(token) <= MAX_TOKEN_LENGTH
    with caplog.at_level(logging.DEBUG, logger="pyauth.tokens"):
        with pytest.raises(InvalidAccessToken):
            await verify_access_token(keyring, settings, token, now=clock.now())
        _refuse(keyring, settings, token, clock)
    # Refused by the size of its header, not by whatever the JSON parser made of it.
    reasons = [record.getMessage() for record in caplog.records if record.name == "pyauth.tokens"]
    assert reasons == [f"access token refused: header over {MAX_HEADER_LENGTH} characters"] * 2
    # A real header stays far below the cap.
    issued, _ = issue_access_token(keyring, settings, subject="u", session_id="s", now=clock.now())
    assert len(issued.split(".")[0]) < MAX_HEADER_LENGTH / 3


@pytest.mark.parametrize("depth", [3000, 100])
async def test_a_bearer_token_with_a_nested_arrays_header_gets_401_not_500(
    client: httpx.AsyncClient, depth: int
) -> None:
    response = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {_nested_arrays_header_token(depth)}"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
