"""Issue 11, OpenID Foundation conformance module `oidcc-server-rotate-keys`: after `make rotate-keys` the
relying parties that cache the JWKS never meet a `kid` they do not hold. The new keys (EC and RSA) are in
the JWKS at once but sign only KEY_PUBLICATION_LEAD_SECONDS later; the old ones sign until then and verify
until every token they signed has expired."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.issuing import issue_access_token
from app.core.clock import ManualClock
from app.core.config import Settings
from app.keys.keyring import ID_TOKEN_TTL_BOUND, REFRESH_INTERVAL, RETIRED_KEY_GRACE, KeyRing
from app.keys.storage import rotate_signing_key
from app.keys.tokens import InvalidAccessToken, verify_access_token
from app.oidc.id_token import ID_TOKEN_TTL, issue_id_token
from app.users.models import User
from tests.conftest import make_settings
from tests.keys.helpers import keys_app

ID_TOKEN_ALGORITHMS = ("ES256", "RS256")


@pytest.fixture
def rotate_keys(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> Callable[[], Awaitable[dict[str, str]]]:
    """`make rotate-keys` from another process: committed, with the configured lead time."""

    async def rotate() -> dict[str, str]:
        async with sessionmaker() as session, session.begin():
            return await rotate_signing_key(session, settings, clock)

    return rotate


def _id_token(keyring: KeyRing, settings: Settings, clock: ManualClock, algorithm: str) -> str:
    return issue_id_token(
        keyring,
        algorithm=algorithm,
        issuer=settings.issuer,
        client_id="rp",
        user=User(
            id=uuid.uuid4(),
            email="user@example.com",
            is_verified=True,
            locale="en",
            updated_at=clock.now(),
        ),
        now=clock.now(),
        auth_time=clock.now(),
        amr=["pwd"],
        nonce=None,
        access_token="an-access-token",
        scopes=["openid"],
    )


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _verified_by_cached_jwks(
    jwks: dict[str, Any], token: str, settings: Settings, clock: ManualClock
) -> None:
    """A relying party that verifies with the key set it cached, never refetching: PyJWT's own checks,
    at the test's clock."""
    header = jwt.get_unverified_header(token)
    keys = {jwk["kid"]: jwt.PyJWK.from_dict(jwk) for jwk in jwks["keys"]}
    assert header["kid"] in keys, "a token names a key the cached JWKS does not hold"
    key = keys[header["kid"]]
    jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=jwt.decode(token, options={"verify_signature": False})["aud"],
        issuer=settings.issuer,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


async def test_oidcc_server_rotate_keys_new_keys_are_published_before_they_sign(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    rotate_keys: Callable[[], Awaitable[dict[str, str]]],
) -> None:
    lead = timedelta(seconds=settings.KEY_PUBLICATION_LEAD_SECONDS)
    assert lead > timedelta(seconds=settings.JWKS_CACHE_MAX_AGE_SECONDS) + REFRESH_INTERVAL
    old = {algorithm: keyring.signing_key(algorithm).kid for algorithm in ID_TOKEN_ALGORITHMS}
    old_access, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s1", now=clock.now())
    old_id_tokens = [_id_token(keyring, settings, clock, algorithm) for algorithm in ID_TOKEN_ALGORITHMS]

    transport = httpx.ASGITransport(app=keys_app(keyring, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        new = await rotate_keys()
        assert new.keys() == {"ES256", "RS256"}
        # This process sees the rotation at its next periodic refresh; the JWKS it serves then holds the
        # new keys next to the old ones. A relying party caches that set for the max-age it is given.
        clock.advance(REFRESH_INTERVAL)
        response = await client.get("/.well-known/jwks.json")
        assert response.headers["cache-control"] == f"public, max-age={settings.JWKS_CACHE_MAX_AGE_SECONDS}"
        cached = response.json()
        assert {jwk["kid"] for jwk in cached["keys"]} == {*old.values(), *new.values()}

        # Until the lead time has passed, everything is still signed with the old keys...
        clock.advance(lead - REFRESH_INTERVAL - timedelta(seconds=1))
        access, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s1", now=clock.now())
        assert _kid(access) == old["ES256"]
        for algorithm in ID_TOKEN_ALGORITHMS:
            assert _kid(_id_token(keyring, settings, clock, algorithm)) == old[algorithm]

        # ...and from then on with the new ones only, which the cached set already holds. The switch needs
        # no refresh: every process holds the new keys and their start time, and switches at that instant.
        clock.advance(timedelta(seconds=1))
        new_access, _ = issue_access_token(
            keyring, settings, subject="user-2", session_id="s2", now=clock.now()
        )
        assert _kid(new_access) == new["ES256"]
        new_id_tokens = [_id_token(keyring, settings, clock, algorithm) for algorithm in ID_TOKEN_ALGORITHMS]
        assert [_kid(token) for token in new_id_tokens] == [new["ES256"], new["RS256"]]
        for token in [new_access, *new_id_tokens, old_access, *old_id_tokens]:
            _verified_by_cached_jwks(cached, token, settings, clock)
        # Tokens of the old key still verify at pyauth, while they live.
        assert (await verify_access_token(keyring, settings, old_access, now=clock.now())).sub == "user-1"
        assert (await verify_access_token(keyring, settings, new_access, now=clock.now())).sub == "user-2"

        # The old keys leave the JWKS once every token they signed has expired.
        clock.advance(timedelta(seconds=settings.ACCESS_TOKEN_TTL_SECONDS) + RETIRED_KEY_GRACE)
        current = (await client.get("/.well-known/jwks.json")).json()
        assert {jwk["kid"] for jwk in current["keys"]} == set(new.values())
        with pytest.raises(InvalidAccessToken):
            await verify_access_token(keyring, settings, old_access, now=clock.now())


async def test_a_second_rotation_within_the_lead_time_keeps_one_key_signing_at_a_time(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    rotate_keys: Callable[[], Awaitable[dict[str, str]]],
) -> None:
    lead = timedelta(seconds=settings.KEY_PUBLICATION_LEAD_SECONDS)
    old = keyring.current.kid
    first = await rotate_keys()
    clock.advance(lead / 2)
    second = await rotate_keys()
    await keyring.refresh()

    assert keyring.current.kid == old
    clock.advance(lead / 2)  # the first rotation's keys' turn
    assert keyring.current.kid == first["ES256"]
    assert keyring.signing_key("RS256").kid == first["RS256"]
    clock.advance(lead / 2)  # the second's
    assert keyring.current.kid == second["ES256"]
    assert keyring.signing_key("RS256").kid == second["RS256"]


async def test_the_current_key_follows_the_clock_both_ways_across_a_rotation(
    keyring: KeyRing,
    settings: Settings,
    clock: ManualClock,
    rotate_keys: Callable[[], Awaitable[dict[str, str]]],
) -> None:
    """`current` keeps its choice only while it cannot change: one microsecond before the new key's
    turn the old key still signs, at the instant the new one does, and a clock set back hands the old
    key back."""
    lead = timedelta(seconds=settings.KEY_PUBLICATION_LEAD_SECONDS)
    old = keyring.current.kid
    rotated = await rotate_keys()
    await keyring.refresh()
    assert keyring.current.kid == old
    clock.advance(lead - timedelta(microseconds=1))
    assert keyring.current.kid == old
    clock.advance(timedelta(microseconds=1))
    assert keyring.current.kid == rotated["ES256"]
    clock.advance(-timedelta(microseconds=1))
    assert keyring.current.kid == old
    clock.advance(timedelta(days=1))
    assert keyring.current.kid == rotated["ES256"]


def test_the_lead_time_must_outlast_a_cached_jwks() -> None:
    with pytest.raises(ValueError, match="KEY_PUBLICATION_LEAD_SECONDS"):
        make_settings(JWKS_CACHE_MAX_AGE_SECONDS=600, KEY_PUBLICATION_LEAD_SECONDS=600)
    assert (
        make_settings(
            JWKS_CACHE_MAX_AGE_SECONDS=60, KEY_PUBLICATION_LEAD_SECONDS=90
        ).KEY_PUBLICATION_LEAD_SECONDS
        == 90
    )


async def test_the_rsa_key_never_signs_an_access_token(
    keyring: KeyRing, settings: Settings, clock: ManualClock
) -> None:
    """Key separation: an at+jwt signed with the published RSA key (RS256 ID tokens only) is refused."""
    rsa = keyring.signing_key("RS256")
    valid, _ = issue_access_token(keyring, settings, subject="user-1", session_id="s1", now=clock.now())
    claims = jwt.decode(valid, options={"verify_signature": False})
    forged = jwt.encode(claims, rsa.private_key, algorithm="RS256", headers={"kid": rsa.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidAccessToken):
        await verify_access_token(keyring, settings, forged, now=clock.now())


def test_a_retired_key_stays_published_while_an_id_token_it_signed_lives() -> None:
    # The key ring keeps a retired key for the longer of the access-token TTL and this bound.
    assert ID_TOKEN_TTL <= ID_TOKEN_TTL_BOUND
