"""Users for tests, inserted the way registration leaves them (the row, the verification mail, the
`user.registered` audit row) but with a precomputed argon2 hash: neither the password policy (zxcvbn)
nor a hash runs. Tests whose subject is registration, hashing or the policy register over HTTP instead.

The hash of each password is made once per session and per argon2 cost, with the cost of the app the user
is inserted into, so that a login verifies it at that cost and never asks for a rehash.
"""

import functools
import uuid

import argon2
import httpx
from fastapi import FastAPI

from app.account import registration
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.templating import DEFAULT_LOCALE
from app.passwords.policy import normalize_password
from app.users.emails import canonicalize_email

# Who registered, as the audit row of an HTTP registration through the test transport records it.
TEST_IP_ADDRESS = "127.0.0.1"
TEST_USER_AGENT = f"python-httpx/{httpx.__version__}"


@functools.cache
def _password_hash(password: str, memory_kib: int, time_cost: int, parallelism: int) -> str:
    hasher = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
    )
    return hasher.hash(normalize_password(password).encode("utf-8"))


def password_hash(password: str, settings: Settings) -> str:
    """The argon2id hash of `password` at `settings`' cost, made once per session."""
    return _password_hash(
        password, settings.ARGON2_MEMORY_KIB, settings.ARGON2_TIME_COST, settings.ARGON2_PARALLELISM
    )


async def create_user(app: FastAPI, email: str, password: str, *, locale: str = DEFAULT_LOCALE) -> uuid.UUID:
    """Insert a user as `POST /auth/register` would, through the app's session factory (inside the
    test's transaction for `client`, committed for `live_client`), at the app's clock; its id."""
    settings: Settings = app.state.settings
    ctx = RequestContext(now=app.state.clock.now(), ip_address=TEST_IP_ADDRESS, user_agent=TEST_USER_AGENT)
    async with app.state.sessionmaker() as db:
        user = await registration.create_account(
            db,
            email=canonicalize_email(email),
            password_hash=password_hash(password, settings),
            settings=settings,
            ctx=ctx,
            locale=locale,
        )
        assert user is not None, f"{email} is already registered"
        await db.commit()
        user_id: uuid.UUID = user["id"]
        return user_id
