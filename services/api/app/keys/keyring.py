"""The key ring: the signing keys one process holds in memory, loaded from `signing_keys`.

Each API process loads the ring at startup (generating a first key of each signing algorithm that has
none: the access-token key of JWT_ALGORITHM and the RSA key of RS256 ID tokens), signs with the newest key
that is active (its `active_from` passed, its `retired_at` not), and publishes every public key a live
token may still name, and every key waiting for its turn. A rotation done by another process (the CLI,
another worker) is picked up by `maybe_refresh()` within REFRESH_INTERVAL, or at once when a token arrives
naming a key id this process has not seen; the switch to a rotated-in key then happens at its
`active_from`, read from the clock, in every process at the same instant.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.config import KEY_RING_REFRESH_SECONDS, Settings
from app.keys import repository
from app.keys.crypto import KeyDecryptionError
from app.keys.repository import StoredKey
from app.keys.storage import (
    ACCESS_TOKEN_ALGORITHMS,
    ID_TOKEN_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    PrivateKey,
    PublicKey,
    add_signing_key,
    load_private_key,
    public_key_from_jwk,
    signing_algorithms,
)

log = logging.getLogger("pyauth.keys")

# Must stay well under RETIRED_KEY_GRACE: a process that has not yet seen a rotation keeps signing
# with the retired key for up to this long, and those tokens must still verify everywhere.
REFRESH_INTERVAL: Final = timedelta(seconds=KEY_RING_REFRESH_SECONDS)
UNKNOWN_KID_REFRESH_INTERVAL: Final = timedelta(seconds=10)
# How long a request waits for the periodic refresh it started; the refresh goes on in the background.
# With the pool exhausted, a refresh waits DB_POOL_TIMEOUT for a connection: the request must not wait
# that out before its own query waits it out again.
PERIODIC_REFRESH_WAIT_SECONDS: Final = 0.5
RETIRED_KEY_GRACE: Final = timedelta(seconds=60)
# The longest an ID token lives (app.oidc.id_token.ID_TOKEN_TTL, which a test holds under this): a
# retired key stays published for the longer of this and ACCESS_TOKEN_TTL_SECONDS.
ID_TOKEN_TTL_BOUND: Final = timedelta(minutes=5)

_PUBLIC_JWK_MEMBERS = ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use")


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A public key that verifies tokens and appears in the JWKS."""

    kid: str
    algorithm: str
    public_key: PublicKey
    jwk: Mapping[str, str]
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class CurrentKey:
    """A key this process signs with, or will once its `active_from` has come."""

    kid: str
    algorithm: str
    private_key: PrivateKey = field(repr=False)
    active_from: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class PublishedJwks:
    """The JWK Set's response body (compact JSON) and its strong ETag (RFC 9110 §8.8.3), a digest of it."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, jwks: Mapping[str, object]) -> "PublishedJwks":
        body = json.dumps(jwks, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@dataclass(frozen=True, slots=True)
class _KeptChoice:
    """A key `_choose` picked, and the instants between which it picks the same one: `_choose` reads the
    time only through `active_from <= now` and `retired_at > now`, which change only at those instants."""

    key: CurrentKey
    since: datetime
    until: datetime

    @classmethod
    def around(cls, key: CurrentKey, signers: Sequence[CurrentKey], now: datetime) -> "_KeptChoice":
        instants = [signer.active_from for signer in signers]
        instants += [signer.retired_at for signer in signers if signer.retired_at is not None]
        since = max((instant for instant in instants if instant <= now), default=_DAWN)
        until = min((instant for instant in instants if instant > now), default=_DUSK)
        return cls(key, since, until)


_DAWN = datetime.min.replace(tzinfo=UTC)
_DUSK = datetime.max.replace(tzinfo=UTC)


class NoSigningKey(RuntimeError):
    """The database holds no unretired signing key this process can use."""


def _signs_after(key: StoredKey | CurrentKey, now: datetime) -> bool:
    """Whether the key is not retired at `now`: active, or waiting for its `active_from`."""
    return key.retired_at is None or key.retired_at > now


def _choose(signers: Sequence[CurrentKey], algorithms: Sequence[str], now: datetime) -> CurrentKey | None:
    """The key to sign with at `now`: of the first of `algorithms` that has one, the active key that
    became active last. Failing an active key (this process has not refreshed since a rotation it has
    not seen the end of), the one retired last; failing that, the first waiting one."""
    for algorithm in algorithms:
        of_algorithm = [key for key in signers if key.algorithm == algorithm]
        active = [key for key in of_algorithm if key.active_from <= now and _signs_after(key, now)]
        if active:
            return max(active, key=lambda key: key.active_from)
        started = [key for key in of_algorithm if key.active_from <= now]
        if started:
            return max(started, key=lambda key: (key.retired_at or key.active_from, key.active_from))
        if of_algorithm:
            return min(of_algorithm, key=lambda key: key.active_from)
    return None


class KeyRing:
    """The signing keys of one process. Build it with `KeyRing.load(...)`."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._clock = clock
        # The private keys that sign now or will (unretired when last read), by kid.
        self._signers: dict[str, CurrentKey] = {}
        self._current: _KeptChoice | None = None  # `current`'s last answer, while it holds
        self._keys: dict[str, PublishedKey] = {}
        self._jwks: dict[str, list[dict[str, str]]] = {"keys": []}
        self._jwks_document = PublishedJwks.of(self._jwks)
        self._last_refresh: datetime = clock.now()
        self._last_unknown_kid_refresh: datetime | None = None
        self._refresh_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    async def load(
        cls, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
    ) -> "KeyRing":
        """Load the key set, generating and committing a first key of each signing algorithm (JWT_ALGORITHM,
        RS256) that has none. A key generated here signs at once: nothing can have cached a key set
        naming the algorithm's keys before, and tokens must be signed from the first request."""
        keyring = cls(sessionmaker, settings, clock)
        async with sessionmaker() as session, session.begin():
            stored = await repository.read_keys(session, keyring._cutoff())
            if keyring._missing_algorithms(stored):
                # Several workers start at once: one generates, the others wait here and then see it.
                await repository.lock_key_generation(session)
                stored = await repository.read_keys(session, keyring._cutoff())
                if missing := keyring._missing_algorithms(stored):
                    now = clock.now()
                    for algorithm in missing:
                        await add_signing_key(session, settings, algorithm, now=now, active_from=now)
                    stored = await repository.read_keys(session, keyring._cutoff())
        keyring._install(stored)
        return keyring

    @property
    def current(self) -> CurrentKey:
        """The key to sign access tokens with: the active key of JWT_ALGORITHM (during a rolling change
        of JWT_ALGORITHM, failing one, of the other access-token algorithm).

        The choice is kept for as long as it cannot change: until the clock reaches (or goes back past)
        the next (or last) `active_from` or `retired_at` of a signer, or the ring is reloaded."""
        now = self._clock.now()
        kept = self._current
        if kept is not None and kept.since <= now < kept.until:
            return kept.key
        algorithms = [
            self._settings.JWT_ALGORITHM,
            *sorted(ACCESS_TOKEN_ALGORITHMS - {self._settings.JWT_ALGORITHM}),
        ]
        signers = list(self._signers.values())
        key = _choose(signers, algorithms, now)
        if key is None:
            raise NoSigningKey("the key ring holds no signing key")
        self._current = _KeptChoice.around(key, signers, now)
        return key

    def signing_key(self, algorithm: str) -> CurrentKey:
        """The key to sign an ID token of `algorithm` (one of `id_token_algorithms()`) with."""
        key = _choose(list(self._signers.values()), [algorithm], self._clock.now())
        if key is None:
            raise NoSigningKey(f"the key ring holds no {algorithm} signing key")
        return key

    def id_token_algorithms(self) -> list[str]:
        """The ID-token algorithms a client may register that this ring holds a signing key for."""
        held = {key.algorithm for key in self._signers.values()}
        return [algorithm for algorithm in ID_TOKEN_ALGORITHMS if algorithm in held]

    def key_for(self, kid: str) -> PublishedKey | None:
        """The public key named `kid`, if it may still verify tokens."""
        return self._keys.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The RFC 7517 JWK Set: `{"keys": [...]}`, the access-token key of the last refresh first, then
        the others newest first (keys waiting for their turn included). Shared: do not mutate."""
        return self._jwks

    def jwks_document(self) -> "PublishedJwks":
        """The JWK Set as the endpoint sends it: its JSON bytes and their ETag, made when the set changes
        (not per request)."""
        return self._jwks_document

    def signing_algorithms(self) -> list[str]:
        """The algorithms of the published keys that may verify access tokens."""
        return sorted(
            {key.algorithm for key in self._keys.values() if key.algorithm in ACCESS_TOKEN_ALGORITHMS}
        )

    async def refresh(self) -> None:
        """Reload the key set from the database."""
        async with self._refresh_lock:
            self._last_refresh = self._clock.now()
            async with self._sessionmaker() as session:
                stored = await repository.read_keys(session, self._cutoff())
            self._install(stored)

    def refresh_due(self) -> bool:
        """Whether the last refresh is older than REFRESH_INTERVAL (or the clock went back): what
        `maybe_refresh` checks first, for a caller that would rather not await when it is not."""
        elapsed = self._clock.now() - self._last_refresh
        return not timedelta(0) <= elapsed < REFRESH_INTERVAL

    async def maybe_refresh(self) -> None:
        """Refresh if the last refresh is older than REFRESH_INTERVAL. Cheap otherwise; a database
        failure keeps the keys already held (and is logged). Waits at most PERIODIC_REFRESH_WAIT_SECONDS
        for the refresh; a slower one finishes in the background."""
        if not self.refresh_due():
            return
        self._last_refresh = self._clock.now()  # before awaiting, so concurrent callers do not all query
        refresh = asyncio.ensure_future(self._refresh_quietly())
        self._background.add(refresh)  # a reference, so the task is not collected while it runs
        refresh.add_done_callback(self._background.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(refresh), PERIODIC_REFRESH_WAIT_SECONDS)

    async def refresh_for_unknown_kid(self, kid: str) -> bool:
        """Whether `kid` is known, refreshing first if it is not. At most one such refresh per
        UNKNOWN_KID_REFRESH_INTERVAL, so made-up key ids cannot cost a query per request."""
        if kid in self._keys:
            return True
        now = self._clock.now()
        last = self._last_unknown_kid_refresh
        if last is not None and timedelta(0) <= now - last < UNKNOWN_KID_REFRESH_INTERVAL:
            return False
        self._last_unknown_kid_refresh = now
        await self._refresh_quietly()
        return kid in self._keys

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # keep serving with the keys we hold; the next interval retries
            # Our own errors say what is wrong with a key; others (the database) only by class name,
            # so that no statement or URL reaches the log.
            reason = str(exc) if isinstance(exc, KeyDecryptionError | NoSigningKey) else type(exc).__name__
            log.warning("signing key refresh failed (%s); keeping the current key set", reason)

    def _cutoff(self) -> datetime:
        ttl = max(timedelta(seconds=self._settings.ACCESS_TOKEN_TTL_SECONDS), ID_TOKEN_TTL_BOUND)
        return self._clock.now() - ttl - RETIRED_KEY_GRACE

    def _missing_algorithms(self, stored: Sequence[StoredKey]) -> list[str]:
        """The signing algorithms with no key that signs now or will."""
        now = self._clock.now()
        return [
            algorithm
            for algorithm in signing_algorithms(self._settings)
            if not any(key.algorithm == algorithm and _signs_after(key, now) for key in stored)
        ]

    def _install(self, stored: Sequence[StoredKey]) -> None:
        now = self._clock.now()
        usable = [key for key in stored if key.algorithm in SUPPORTED_ALGORITHMS]
        for row in stored:
            if row.algorithm not in SUPPORTED_ALGORITHMS:
                log.warning("signing key %s has unsupported algorithm %r; ignored", row.kid, row.algorithm)
        # Every key that signs now or will; failing one (a process that missed a rotation's end), the
        # newest retired ones, so that tokens are still signed with a published key.
        signing_rows = [row for row in usable if _signs_after(row, now)]
        if not any(row.algorithm in ACCESS_TOKEN_ALGORITHMS for row in signing_rows):
            if not self._signers:
                raise NoSigningKey("signing_keys holds no unretired key of a supported algorithm")
            log.error("signing_keys holds no unretired key; keeping the key set loaded before")
            return
        signers: dict[str, CurrentKey] = {}
        for row in signing_rows:
            known = self._signers.get(row.kid)
            signers[row.kid] = CurrentKey(
                kid=row.kid,
                algorithm=row.algorithm,
                # Decrypted once per process and key, not at each refresh.
                private_key=known.private_key if known else load_private_key(row, self._settings),
                active_from=row.active_from,
                retired_at=row.retired_at,
            )
        keys: dict[str, PublishedKey] = {}
        for row in usable:
            published = self._keys.get(row.kid)
            keys[row.kid] = PublishedKey(
                kid=row.kid,
                algorithm=row.algorithm,
                public_key=published.public_key
                if published
                else public_key_from_jwk(row.algorithm, row.public_jwk),
                jwk={name: row.public_jwk[name] for name in _PUBLIC_JWK_MEMBERS if name in row.public_jwk},
                created_at=row.created_at,
                retired_at=row.retired_at,
            )
        for kid in signers.keys() - self._signers.keys():
            signer = signers[kid]
            log.info(
                "signing key %s (%s) signs from %s", kid, signer.algorithm, signer.active_from.isoformat()
            )
        previous_current = self._current_kid()
        self._signers = signers
        self._current = None
        current = self._current_kid()
        if previous_current != current or keys.keys() != self._keys.keys():
            # The access-token key first, then the others newest first (the order `stored` has).
            ordered = sorted(keys.values(), key=lambda key: key.kid != current)
            self._jwks = {"keys": [dict(key.jwk) for key in ordered]}
            self._jwks_document = PublishedJwks.of(self._jwks)
        self._keys = keys

    def _current_kid(self) -> str | None:
        try:
            return self.current.kid
        except NoSigningKey:
            return None
