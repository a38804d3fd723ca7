"""The key ring: the signing keys one process holds in memory, loaded from `signing_keys`.

Each API process loads the ring at startup (generating the first key if there is none), signs with the
newest unretired key, and publishes every public key a live token may still name. A rotation done by
another process (the CLI, another worker) is picked up by `maybe_refresh()` within
REFRESH_INTERVAL, or at once when a token arrives naming a key id this process has not seen.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.config import Settings
from app.keys import repository
from app.keys.crypto import KeyDecryptionError
from app.keys.repository import StoredKey
from app.keys.storage import (
    SUPPORTED_ALGORITHMS,
    PrivateKey,
    PublicKey,
    load_private_key,
    public_key_from_jwk,
    rotate_signing_key,
)

log = logging.getLogger("pyauth.keys")

# Must stay well under RETIRED_KEY_GRACE: a process that has not yet seen a rotation keeps signing
# with the retired key for up to this long, and those tokens must still verify everywhere.
REFRESH_INTERVAL: Final = timedelta(seconds=30)
UNKNOWN_KID_REFRESH_INTERVAL: Final = timedelta(seconds=10)
# How long a request waits for the periodic refresh it started; the refresh goes on in the background.
# With the pool exhausted, a refresh waits DB_POOL_TIMEOUT for a connection: the request must not wait
# that out before its own query waits it out again.
PERIODIC_REFRESH_WAIT_SECONDS: Final = 0.5
RETIRED_KEY_GRACE: Final = timedelta(seconds=60)

_PUBLIC_JWK_MEMBERS = ("kty", "crv", "x", "y", "kid", "alg", "use")


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
    """The key this process signs with."""

    kid: str
    algorithm: str
    private_key: PrivateKey = field(repr=False)


class NoSigningKey(RuntimeError):
    """The database holds no unretired signing key this process can use."""


def _pick_current(stored: Sequence[StoredKey], algorithm: str) -> StoredKey | None:
    """The newest unretired key of the configured algorithm; failing that, the newest unretired one
    (another process may run with a different JWT_ALGORITHM during a rolling change)."""
    unretired = [key for key in stored if key.retired_at is None and key.algorithm in SUPPORTED_ALGORITHMS]
    preferred = [key for key in unretired if key.algorithm == algorithm]
    candidates = preferred or unretired
    return candidates[0] if candidates else None  # `stored` is newest first


class KeyRing:
    """The signing keys of one process. Build it with `KeyRing.load(...)`."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._clock = clock
        self._current: CurrentKey | None = None
        self._keys: dict[str, PublishedKey] = {}
        self._jwks: dict[str, list[dict[str, str]]] = {"keys": []}
        self._last_refresh: datetime = clock.now()
        self._last_unknown_kid_refresh: datetime | None = None
        self._refresh_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    async def load(
        cls, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
    ) -> "KeyRing":
        """Load the key set, generating and committing a first key of JWT_ALGORITHM if none exists."""
        keyring = cls(sessionmaker, settings, clock)
        async with sessionmaker() as session, session.begin():
            stored = await repository.read_keys(session, keyring._cutoff())
            if not keyring._has_configured_key(stored):
                # Several workers start at once: one generates, the others wait here and then see it.
                await repository.lock_key_generation(session)
                stored = await repository.read_keys(session, keyring._cutoff())
                if not keyring._has_configured_key(stored):
                    await rotate_signing_key(session, settings, clock)
                    stored = await repository.read_keys(session, keyring._cutoff())
        keyring._install(stored)
        return keyring

    @property
    def current(self) -> CurrentKey:
        """The key to sign with: the newest unretired one."""
        if self._current is None:
            raise NoSigningKey("the key ring holds no signing key")
        return self._current

    def key_for(self, kid: str) -> PublishedKey | None:
        """The public key named `kid`, if it may still verify tokens."""
        return self._keys.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The RFC 7517 JWK Set: `{"keys": [...]}`, current key first. Shared: do not mutate."""
        return self._jwks

    def signing_algorithms(self) -> list[str]:
        return sorted({key.algorithm for key in self._keys.values()})

    async def refresh(self) -> None:
        """Reload the key set from the database."""
        async with self._refresh_lock:
            self._last_refresh = self._clock.now()
            async with self._sessionmaker() as session:
                stored = await repository.read_keys(session, self._cutoff())
            self._install(stored)

    async def maybe_refresh(self) -> None:
        """Refresh if the last refresh is older than REFRESH_INTERVAL. Cheap otherwise; a database
        failure keeps the keys already held (and is logged). Waits at most PERIODIC_REFRESH_WAIT_SECONDS
        for the refresh; a slower one finishes in the background."""
        now = self._clock.now()
        elapsed = now - self._last_refresh
        if timedelta(0) <= elapsed < REFRESH_INTERVAL:
            return
        self._last_refresh = now  # before awaiting, so concurrent callers do not all query
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
        ttl = timedelta(seconds=self._settings.ACCESS_TOKEN_TTL_SECONDS)
        return self._clock.now() - ttl - RETIRED_KEY_GRACE

    def _has_configured_key(self, stored: Sequence[StoredKey]) -> bool:
        algorithm = self._settings.JWT_ALGORITHM
        return any(key.retired_at is None and key.algorithm == algorithm for key in stored)

    def _install(self, stored: Sequence[StoredKey]) -> None:
        current_row = _pick_current(stored, self._settings.JWT_ALGORITHM)
        if current_row is None:
            if self._current is None:
                raise NoSigningKey("signing_keys holds no unretired key of a supported algorithm")
            log.error("signing_keys holds no unretired key; keeping the key set loaded before")
            return
        if self._current is not None and self._current.kid == current_row.kid:
            current = self._current
        else:
            current = CurrentKey(
                kid=current_row.kid,
                algorithm=current_row.algorithm,
                private_key=load_private_key(current_row, self._settings),
            )
        keys: dict[str, PublishedKey] = {}
        for row in stored:
            if row.algorithm not in SUPPORTED_ALGORITHMS:
                log.warning("signing key %s has unsupported algorithm %r; ignored", row.kid, row.algorithm)
                continue
            known = self._keys.get(row.kid)
            keys[row.kid] = PublishedKey(
                kid=row.kid,
                algorithm=row.algorithm,
                public_key=known.public_key if known else public_key_from_jwk(row.algorithm, row.public_jwk),
                jwk={name: row.public_jwk[name] for name in _PUBLIC_JWK_MEMBERS if name in row.public_jwk},
                created_at=row.created_at,
                retired_at=row.retired_at,
            )
        current_changed = self._current is None or current.kid != self._current.kid
        if current_changed:
            log.info("signing with key %s (%s)", current.kid, current.algorithm)
        if current_changed or keys.keys() != self._keys.keys():
            # Current key first, then the others newest first (the order `stored` has).
            ordered = [keys[current.kid], *(key for key in keys.values() if key.kid != current.kid)]
            self._jwks = {"keys": [dict(key.jwk) for key in ordered]}
        self._keys = keys
        self._current = current
