"""The key ring: first-start generation, reuse, encryption at rest, rotation, refresh and retirement."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.issuing import issue_access_token
from app.core.clock import ManualClock
from app.core.config import Settings
from app.core.database import build_engine, build_sessionmaker
from app.keys.crypto import KeyDecryptionError, decrypt_private_key
from app.keys.keyring import (
    PERIODIC_REFRESH_WAIT_SECONDS,
    REFRESH_INTERVAL,
    RETIRED_KEY_GRACE,
    UNKNOWN_KID_REFRESH_INTERVAL,
    KeyRing,
)
from app.keys.models import SigningKey
from app.keys.repository import KEY_GENERATION_LOCK_ID
from app.keys.tokens import InvalidAccessToken, verify_access_token
from tests.conftest import make_settings

Rotate = Callable[[], Awaitable[str]]


async def _stored_keys(sessionmaker: async_sessionmaker[AsyncSession]) -> list[SigningKey]:
    async with sessionmaker() as session:
        result = await session.execute(select(SigningKey).order_by(SigningKey.created_at))
        return list(result.scalars())


async def test_first_load_generates_a_key_and_the_second_reuses_it(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    assert await _stored_keys(sessionmaker) == []

    first = await KeyRing.load(sessionmaker, settings, clock)
    second = await KeyRing.load(sessionmaker, settings, clock)

    # issue 11: an RSA key (RS256 ID tokens) is generated next to the EC key, and reused the same way.
    stored = await _stored_keys(sessionmaker)
    rsa_kid = first.signing_key("RS256").kid
    assert sorted(key.kid for key in stored) == sorted([first.current.kid, rsa_kid])
    assert second.current.kid == first.current.kid
    assert second.signing_key("RS256").kid == rsa_kid
    by_kid = {key.kid: key for key in stored}
    for kid, algorithm in ((first.current.kid, "ES256"), (rsa_kid, "RS256")):
        assert by_kid[kid].algorithm == algorithm
        assert by_kid[kid].retired_at is None
        assert by_kid[kid].created_at == clock.now()
        assert len(kid) >= 22
        assert set(kid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_the_private_key_is_stored_encrypted_and_decrypts_only_with_the_right_key(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    keyring = await KeyRing.load(sessionmaker, settings, clock)  # both keys generated here
    rows = {row.kid: row for row in await _stored_keys(sessionmaker)}
    # issue 11: the RSA key is stored as the EC key is.
    for signer in (keyring.current, keyring.signing_key("RS256")):
        row = rows[signer.kid]
        private_key = signer.private_key
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert b"PRIVATE KEY" not in row.private_key_encrypted
        assert pem not in row.private_key_encrypted
        assert der not in row.private_key_encrypted
        assert not {"d", "p", "q", "dp", "dq", "qi"} & row.public_jwk.keys()

        secret = settings.KEY_ENCRYPTION_KEY.get_secret_value()
        assert decrypt_private_key(row.private_key_encrypted, kid=row.kid, key_encryption_key=secret) == der
        with pytest.raises(KeyDecryptionError):
            decrypt_private_key(row.private_key_encrypted, kid=row.kid, key_encryption_key=secret[::-1])

    other = make_settings(KEY_ENCRYPTION_KEY="a-different-key-encryption-key-0123456789")
    with pytest.raises(KeyDecryptionError, match="KEY_ENCRYPTION_KEY"):
        await KeyRing.load(sessionmaker, other, clock)


async def test_jwks_publishes_the_public_key_only(keyring: KeyRing) -> None:
    jwk, rsa_jwk = keyring.jwks()["keys"]
    # issue 11: the RSA key's public members (RFC 7518 §6.3.1) only; e = 65537.
    assert rsa_jwk == {
        "kty": "RSA",
        "n": rsa_jwk["n"],
        "e": "AQAB",
        "kid": keyring.signing_key("RS256").kid,
        "alg": "RS256",
        "use": "sig",
    }
    assert jwk == {
        "kty": "EC",
        "crv": "P-256",
        "x": jwk["x"],
        "y": jwk["y"],
        "kid": keyring.current.kid,
        "alg": "ES256",
        "use": "sig",
    }
    assert keyring.jwks() is keyring.jwks()  # computed once, not per call


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    keyring: KeyRing, settings: Settings, clock: ManualClock, rotate: Rotate
) -> None:
    old_kid = keyring.current.kid
    old_token, _ = issue_access_token(keyring, settings, subject="u1", session_id="s1", now=clock.now())

    new_kid = await rotate()
    await keyring.refresh()

    assert new_kid != old_kid
    assert keyring.current.kid == new_kid
    assert [jwk["kid"] for jwk in keyring.jwks()["keys"] if jwk["alg"] == "ES256"] == [new_kid, old_kid]
    new_token, _ = issue_access_token(keyring, settings, subject="u1", session_id="s1", now=clock.now())
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert (await verify_access_token(keyring, settings, old_token, now=clock.now())).sub == "u1"
    assert (await verify_access_token(keyring, settings, new_token, now=clock.now())).sub == "u1"


async def test_rotation_retires_the_previous_key(
    keyring: KeyRing, sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock, rotate: Rotate
) -> None:
    old_kid = keyring.current.kid
    clock.advance(timedelta(seconds=5))
    new_kid = await rotate()
    rows = {row.kid: row for row in await _stored_keys(sessionmaker)}
    assert rows[old_kid].retired_at == clock.now()
    assert rows[new_kid].retired_at is None
    assert rows[new_kid].created_at == clock.now()


async def test_a_retired_key_leaves_the_jwks_once_its_tokens_have_expired(
    keyring: KeyRing, settings: Settings, clock: ManualClock, rotate: Rotate
) -> None:
    old_kid = keyring.current.kid
    new_kid = await rotate()
    ttl = timedelta(seconds=settings.ACCESS_TOKEN_TTL_SECONDS)

    clock.advance(ttl + RETIRED_KEY_GRACE - timedelta(seconds=1))
    await keyring.refresh()
    assert {jwk["kid"] for jwk in keyring.jwks()["keys"] if jwk["alg"] == "ES256"} == {old_kid, new_kid}

    clock.advance(timedelta(seconds=2))
    await keyring.refresh()
    assert [jwk["kid"] for jwk in keyring.jwks()["keys"] if jwk["alg"] == "ES256"] == [new_kid]
    assert keyring.key_for(old_kid) is None


async def test_maybe_refresh_queries_at_most_once_per_interval(
    keyring: KeyRing, clock: ManualClock, rotate: Rotate
) -> None:
    old_kid = keyring.current.kid
    new_kid = await rotate()

    clock.advance(REFRESH_INTERVAL - timedelta(seconds=1))
    await keyring.maybe_refresh()
    assert keyring.current.kid == old_kid

    clock.advance(timedelta(seconds=1))
    await keyring.maybe_refresh()
    assert keyring.current.kid == new_kid


async def test_a_token_from_a_key_made_elsewhere_triggers_a_rate_limited_refresh(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock, rotate: Rotate
) -> None:
    here = await KeyRing.load(sessionmaker, settings, clock)
    elsewhere = await KeyRing.load(sessionmaker, settings, clock)

    await rotate()
    await elsewhere.refresh()
    token, _ = issue_access_token(elsewhere, settings, subject="u1", session_id="s1", now=clock.now())
    assert here.key_for(elsewhere.current.kid) is None
    assert (await verify_access_token(here, settings, token, now=clock.now())).sub == "u1"

    # A second unseen kid within the interval does not cause another query: refused for now...
    await rotate()
    await elsewhere.refresh()
    token, _ = issue_access_token(elsewhere, settings, subject="u2", session_id="s2", now=clock.now())
    with pytest.raises(InvalidAccessToken):
        await verify_access_token(here, settings, token, now=clock.now())
    # ...and accepted once the interval has passed.
    clock.advance(UNKNOWN_KID_REFRESH_INTERVAL)
    assert (await verify_access_token(here, settings, token, now=clock.now())).sub == "u2"


async def test_switching_the_algorithm_generates_a_key_of_the_new_algorithm(
    keyring: KeyRing, sessionmaker: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    es256_kid = keyring.current.kid
    eddsa = await KeyRing.load(sessionmaker, make_settings(JWT_ALGORITHM="EdDSA"), clock)

    assert eddsa.current.algorithm == "EdDSA"
    assert eddsa.current.kid != es256_kid
    # The ES256 key is retired but stays published while its tokens may be live.
    assert [(jwk["kid"], jwk["alg"]) for jwk in eddsa.jwks()["keys"] if jwk["alg"] != "RS256"] == [
        (eddsa.current.kid, "EdDSA"),
        (es256_kid, "ES256"),
    ]
    rows = {row.kid: row for row in await _stored_keys(sessionmaker)}
    assert rows[es256_kid].retired_at == clock.now()
    assert eddsa.signing_algorithms() == ["ES256", "EdDSA"]


async def _advisory_lock_waiters(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    return int(waiting or 0)


@pytest.mark.usefixtures("committed_keys_set_aside")
async def test_workers_starting_together_generate_a_single_key(
    engine: AsyncEngine, settings: Settings
) -> None:
    # Committed for real: two processes cannot share one rolled-back transaction.
    clock = ManualClock()
    sessionmaker = build_sessionmaker(engine)
    workers: list[asyncio.Task[KeyRing]] = []
    try:
        # Hold the generation lock so that both workers have read "no key" before either may write.
        async with engine.connect() as holder:
            transaction = await holder.begin()
            await holder.execute(select(func.pg_advisory_xact_lock(KEY_GENERATION_LOCK_ID)))
            workers += [asyncio.create_task(KeyRing.load(sessionmaker, settings, clock)) for _ in range(2)]
            async with asyncio.timeout(10):
                while await _advisory_lock_waiters(engine) < 2:
                    assert not any(worker.done() for worker in workers), "a worker did not wait for the lock"
                    await asyncio.sleep(0.02)
            await transaction.rollback()
        async with asyncio.timeout(10):
            first, second = await asyncio.gather(*workers)

        assert first.current.kid == second.current.kid
        assert first.signing_key("RS256").kid == second.signing_key("RS256").kid
        async with engine.connect() as connection:
            kids = (await connection.scalars(select(SigningKey.kid))).all()
        assert sorted(kids) == sorted([first.current.kid, first.signing_key("RS256").kid])
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def test_a_periodic_refresh_never_makes_a_request_wait_out_an_exhausted_pool(
    settings: Settings, clock: ManualClock, committed_keys_set_aside: None
) -> None:
    """With every pooled connection taken, the refresh waits DB_POOL_TIMEOUT for one; the request that
    started it waits at most PERIODIC_REFRESH_WAIT_SECONDS, so its own query's wait is the only one."""
    pool_timeout = 3.0
    engine = build_engine(make_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT=pool_timeout))
    keyring: KeyRing | None = None
    try:
        keyring = await KeyRing.load(build_sessionmaker(engine), settings, clock)
        async with engine.connect() as held:  # the pool's only connection
            await held.execute(text("SELECT 1"))
            clock.advance(REFRESH_INTERVAL)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await keyring.maybe_refresh()
            waited = loop.time() - started
        assert waited < pool_timeout / 2, f"the request waited {waited:.2f}s for the key refresh"
        assert waited >= PERIODIC_REFRESH_WAIT_SECONDS * 0.9
    finally:
        if keyring is not None:
            # Waits for the background refresh (it holds the refresh lock), which gets the freed
            # connection at once, rather than sleeping out its pool timeout.
            await keyring.refresh()
        await engine.dispose()
