"""The library's verifier against the real pyauth: discovery and the JWKS over real HTTP, real tokens from
its login, real key rotations; what it refuses (RFC 8725, RFC 9068), and how many requests it makes."""

import asyncio
import hashlib
import hmac
import json
import secrets
from typing import Any

import pytest
from pyauth_resource import AccessTokenVerifier, Fetches, InvalidToken, VerifierUnavailable

from app.core.clock import ManualClock
from tests.resource.conftest import (
    DISCOVERY_PATH,
    JWKS_PATH,
    Pyauth,
    RequestLog,
    VerifierFactory,
    later,
)
from tests.resource.helpers import (
    b64url,
    b64url_decode,
    claims,
    issued,
    segment,
    signed_with_pyauth_key,
    signed_with_stranger_key,
    unsigned,
)
from tests.servers import loopback_socket, url_of


async def test_rfc9068_a_token_from_pyauths_login_verifies_with_typed_claims(
    pyauth: Pyauth, verifier: AccessTokenVerifier, requests: RequestLog
) -> None:
    user_id, tokens = await pyauth.signed_in_user()

    verified = await verifier.verify(tokens.access)

    assert verified.sub == user_id
    assert verified.issuer == pyauth.issuer
    assert verified.audience == (pyauth.settings.JWT_AUDIENCE,)
    assert verified.amr == ("pwd",)
    assert verified.roles == ("user",)
    assert verified.scopes == ()  # the built-in client is allowed no scope
    assert verified.client_id == "pyauth"  # issue 11: RFC 9068's client_id, the built-in client's
    assert isinstance(verified.auth_time, int)
    assert verified.exp - int(pyauth.clock.now().timestamp()) == pyauth.settings.ACCESS_TOKEN_TTL_SECONDS
    assert verified.raw["sid"]
    with pytest.raises(AttributeError):
        verified.sub = "someone else"  # type: ignore[misc]  # frozen
    # Configured with the issuer URL only: discovery, then the JWKS it names.
    assert requests.sent == [("GET", DISCOVERY_PATH), ("GET", JWKS_PATH)]


async def test_verifying_a_token_costs_no_network_call_once_keys_are_cached(
    pyauth: Pyauth, verifier: AccessTokenVerifier, requests: RequestLog, clock: ManualClock
) -> None:
    _, tokens = await pyauth.signed_in_user()
    await verifier.verify(tokens.access)
    others = [issued(pyauth, scope="notes:read") for _ in range(20)]

    with requests.new_requests() as during:
        for token in [tokens.access] * 50 + others:
            await verifier.verify(token)
        await asyncio.gather(*(verifier.verify(token) for token in others))
    assert during == []

    # The cached set is kept for jwks_max_age (300 s, pyauth's Cache-Control), then read again once.
    later(clock, 299)
    with requests.new_requests() as during:
        await verifier.verify(tokens.access)
    assert during == []
    later(clock, 1)
    with requests.new_requests() as during:
        await asyncio.gather(*(verifier.verify(token) for token in others))
    assert during == [("GET", JWKS_PATH)]


async def test_after_the_first_verification_no_request_reaches_pyauth_by_its_count_and_the_librarys(
    pyauth: Pyauth, verifier: AccessTokenVerifier
) -> None:
    """Verification costs no network call once the keys are cached, counted at both ends: the requests
    the loopback pyauth answered, and the library's own counter (`verifier.fetches`, which `make bench`
    reads around its measured loop)."""
    _, tokens = await pyauth.signed_in_user()
    others = [issued(pyauth, scope="notes:read") for _ in range(20)]
    assert verifier.fetches == Fetches()
    served_before = pyauth.served.total()

    await verifier.verify(tokens.access)

    assert verifier.fetches == Fetches(discovery=1, jwks=1)
    assert pyauth.served.total() - served_before == 2
    assert (pyauth.served[DISCOVERY_PATH], pyauth.served[JWKS_PATH]) == (1, 1)
    cached = verifier.fetches
    served_cached = pyauth.served.total()
    for token in [tokens.access] * 200 + others:
        await verifier.verify(token)
    await asyncio.gather(*(verifier.verify(token) for token in others * 5))

    assert verifier.fetches - cached == Fetches()
    assert verifier.fetches.total == 2
    assert pyauth.served.total() == served_cached, "a verification reached pyauth"


async def test_unknown_kid_after_a_real_key_rotation_refreshes_the_jwks_once(
    pyauth: Pyauth, verifier: AccessTokenVerifier, requests: RequestLog, clock: ManualClock
) -> None:
    _, before = await pyauth.signed_in_user()
    await verifier.verify(before.access)
    later(clock, 10)  # the refresh interval since that first fetch

    await pyauth.rotate_keys()
    _, after = await pyauth.signed_in_user()
    assert (
        json.loads(b64url_decode(after.access.split(".")[0]))["kid"]
        != json.loads(b64url_decode(before.access.split(".")[0]))["kid"]
    )

    with requests.new_requests() as during:
        # Concurrent verifications of tokens under the new kid share one fetch.
        verified = await asyncio.gather(*(verifier.verify(after.access) for _ in range(20)))
    assert {claims.sub for claims in verified} == {verified[0].sub}
    assert during == [("GET", JWKS_PATH)]
    # Tokens signed with the retired key stay valid until they expire: rotation signs no one out.
    with requests.new_requests() as during:
        await verifier.verify(before.access)
    assert during == []


async def test_unknown_kid_flood_fetches_the_jwks_at_most_once_per_interval(
    pyauth: Pyauth, verifier: AccessTokenVerifier, requests: RequestLog, clock: ManualClock
) -> None:
    await verifier.verify(issued(pyauth))  # keys cached
    later(clock, 10)  # the refresh interval since that first fetch

    async def flood() -> None:
        payload = claims(pyauth)
        forged = [signed_with_stranger_key(payload, kid=secrets.token_hex(8)) for _ in range(100)]
        results = await asyncio.gather(*(verifier.verify(token) for token in forged), return_exceptions=True)
        assert all(isinstance(result, InvalidToken) for result in results), results

    with requests.new_requests() as during:
        await flood()
    assert during == [("GET", JWKS_PATH)]

    later(clock, 9)  # within the 10 s interval: no fetch at all, however many unknown kids
    with requests.new_requests() as during:
        await flood()
        await flood()
    assert during == []

    later(clock, 1)
    with requests.new_requests() as during:
        await flood()
    assert during == [("GET", JWKS_PATH)]
    # A real token still verifies from the cache all along.
    with requests.new_requests() as during:
        await verifier.verify(issued(pyauth))
    assert during == []


async def test_alg_none_is_refused(
    pyauth: Pyauth, verifier: AccessTokenVerifier, requests: RequestLog
) -> None:
    kid = pyauth.keyring.current.kid
    for alg in ("none", "None", "NONE"):
        token = unsigned({"alg": alg, "kid": kid, "typ": "at+jwt"}, claims(pyauth))
        with pytest.raises(InvalidToken):
            await verifier.verify(token)
    assert requests.sent == []  # refused before any key is looked up


async def test_hs256_signed_with_the_published_key_is_refused(
    pyauth: Pyauth, verifier: AccessTokenVerifier
) -> None:
    # Key confusion (RFC 8725 §2.1): the public JWK, which anyone can read, used as an HMAC secret.
    # The EC key (issue 11 publishes the RSA key of RS256 ID tokens beside it).
    [jwk] = [key for key in pyauth.keyring.jwks()["keys"] if key["alg"] == "ES256"]
    header = {"alg": "HS256", "kid": jwk["kid"], "typ": "at+jwt"}
    signing_input = f"{segment(header)}.{segment(claims(pyauth))}"
    for secret in (json.dumps(jwk).encode(), jwk["x"].encode()):
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken):
            await verifier.verify(f"{signing_input}.{b64url(signature)}")


async def test_rfc8725_the_algorithm_comes_from_the_key_not_the_token(
    pyauth: Pyauth, verifier: AccessTokenVerifier
) -> None:
    good = signed_with_pyauth_key(pyauth, claims(pyauth))
    header, payload, signature = good.split(".")
    relabelled = json.loads(b64url_decode(header)) | {"alg": "ES384"}
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{segment(relabelled)}.{payload}.{signature}")
    assert (await verifier.verify(good)).sub


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit"])
async def test_rfc8725_key_location_headers_are_refused(
    pyauth: Pyauth, verifier: AccessTokenVerifier, requests: RequestLog, name: str
) -> None:
    token = signed_with_pyauth_key(pyauth, claims(pyauth), **{name: ["https://attacker.example/keys"]})
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    assert all("attacker" not in path for _, path in requests.sent)


async def test_rfc9068_typ_must_be_at_jwt_unless_the_check_is_turned_off(
    pyauth: Pyauth, make_verifier: VerifierFactory
) -> None:
    strict, lenient = make_verifier(), make_verifier(check_type=False)
    for typ in ("JWT", "jwt", None):
        token = signed_with_pyauth_key(pyauth, claims(pyauth), typ=typ)
        with pytest.raises(InvalidToken):
            await strict.verify(token)
        assert (await lenient.verify(token)).sub
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt"):
        assert (await strict.verify(signed_with_pyauth_key(pyauth, claims(pyauth), typ=typ))).sub


async def test_rfc9068_issuer_must_match(pyauth: Pyauth, verifier: AccessTokenVerifier) -> None:
    for issuer in ("https://other.example", pyauth.issuer + "/", None):
        with pytest.raises(InvalidToken):
            await verifier.verify(signed_with_pyauth_key(pyauth, claims(pyauth, iss=issuer)))


async def test_rfc9068_audience_must_hold_the_configured_one(
    pyauth: Pyauth, make_verifier: VerifierFactory
) -> None:
    verifier = make_verifier()
    for audience in ("another-api", ["another-api"], None):
        with pytest.raises(InvalidToken):
            await verifier.verify(signed_with_pyauth_key(pyauth, claims(pyauth, aud=audience)))
    both = signed_with_pyauth_key(pyauth, claims(pyauth, aud=["another-api", pyauth.settings.JWT_AUDIENCE]))
    assert (await verifier.verify(both)).audience == ("another-api", pyauth.settings.JWT_AUDIENCE)
    # A resource server configured for another audience refuses pyauth's default one.
    with pytest.raises(InvalidToken):
        await make_verifier(audience="notes-api").verify(issued(pyauth))


async def test_rfc9068_expired_token_is_refused_after_a_small_leeway(
    pyauth: Pyauth, verifier: AccessTokenVerifier, clock: ManualClock
) -> None:
    token = issued(pyauth)
    ttl = pyauth.settings.ACCESS_TOKEN_TTL_SECONDS
    later(clock, ttl + 29)
    assert (await verifier.verify(token)).sub  # within the 30 s leeway
    later(clock, 1)
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_rfc9068_token_not_yet_valid_or_issued_in_the_future_is_refused(
    pyauth: Pyauth, verifier: AccessTokenVerifier
) -> None:
    now = int(pyauth.clock.now().timestamp())
    assert (await verifier.verify(signed_with_pyauth_key(pyauth, claims(pyauth, nbf=now + 30)))).sub
    for overrides in ({"nbf": now + 31}, {"iat": now + 31}, {"exp": None}, {"iat": None}, {"sub": None}):
        with pytest.raises(InvalidToken):
            await verifier.verify(signed_with_pyauth_key(pyauth, claims(pyauth, **overrides)))


async def test_malformed_claims_and_tokens_are_refused_not_500(
    pyauth: Pyauth, verifier: AccessTokenVerifier
) -> None:
    bad_claims: list[dict[str, Any]] = [
        {"exp": "tomorrow"},
        {"scope": ["a", "b"]},
        {"roles": "admin"},
        {"amr": [1]},
        {"sub": ""},
    ]
    for overrides in bad_claims:
        with pytest.raises(InvalidToken):
            await verifier.verify(signed_with_pyauth_key(pyauth, claims(pyauth, **overrides)))
    header = segment({"alg": "ES256", "kid": pyauth.keyring.current.kid, "typ": "at+jwt"})
    for token in (
        "",
        "a.b",
        "a.b.c.d",
        "x" * 9000,
        f"{header}.!!!.@@@",
        "[" * 2000 + ".e30.",
        f"{header}.e30",
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify(token)


async def test_a_tampered_token_is_refused(pyauth: Pyauth, verifier: AccessTokenVerifier) -> None:
    header, _, signature = issued(pyauth).split(".")
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{header}.{segment(claims(pyauth, roles=['admin']))}.{signature}")


async def test_discovery_naming_another_issuer_is_refused(
    pyauth: Pyauth, make_verifier: VerifierFactory
) -> None:
    # The same server under another name: its document says its issuer is pyauth.issuer, not this one.
    verifier = make_verifier(issuer=pyauth.issuer.replace("127.0.0.1", "localhost"))
    with pytest.raises(VerifierUnavailable):
        await verifier.verify(issued(pyauth))


async def test_an_unreachable_pyauth_is_503_not_401_and_is_retried(
    pyauth: Pyauth, make_verifier: VerifierFactory, requests: RequestLog, clock: ManualClock
) -> None:
    with loopback_socket() as closed:  # bound, never listening: connections are refused
        verifier = make_verifier(issuer=url_of(closed))
        token = issued(pyauth)
        with pytest.raises(VerifierUnavailable) as refused:
            await verifier.verify(token)
        assert refused.value.status_code == 503
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(token)
        assert len(requests.sent) == 1  # failed fetches are retried after a pause, not on every request
        later(clock, 5)
        with pytest.raises(VerifierUnavailable):
            await verifier.verify(token)
        assert len(requests.sent) == 2


def test_plain_http_issuer_off_loopback_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        AccessTokenVerifier("http://auth.example.com", audience="pyauth")
    with pytest.raises(ValueError, match="trailing slash"):
        AccessTokenVerifier("https://auth.example.com/", audience="pyauth")
    with pytest.raises(ValueError, match="asymmetric"):
        AccessTokenVerifier("https://auth.example.com", audience="pyauth", algorithms=["HS256"])
    AccessTokenVerifier("http://api:8000", audience="pyauth", allow_insecure_http=True)
