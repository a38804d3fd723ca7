"""The raw rotation ceiling of `make bench`: refresh's durable work and nothing else, in raw asyncpg on
pyauth's own tables, served like the other ceilings (`serve.py refresh_rotation`, pyauth's server options).

`POST /auth/token` with `grant_type=refresh_token&refresh_token=…` (the body `refresh`'s wrk script sends)
does, per request, what pyauth's refresh grant writes (app/auth/service.py `refresh`, app/auth/issuing.py),
in one statement, so one round trip and one transaction, with `synchronous_commit` on:

- claims the presented token by its SHA-256 digest (`refresh_tokens.used_at`, only while unused), and only
  when its session is live (not revoked, not past its absolute or idle lifetime, its user active);
- touches the session (`auth_sessions.last_used_at`);
- inserts the successor token's digest in the same session;
- inserts the `token.refreshed` audit row (client address from X-Forwarded-For, User-Agent);

then signs one access token with the claims pyauth's carry (RFC 9068 `at+jwt`, the API's JWT_ALGORITHM,
ES256 by default, on a key made at start) and answers the token response. A token it cannot claim is
answered 400 `invalid_grant`: no reuse detection, no rate limit, no client lookup, none of the ORM.
"""

import hashlib
import math
import secrets
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.core.config import get_settings
from app.oidc.acr import acr_of
from apps import Receive, Scope, Send, _answer, _lifespan, _no_reset, database_pool_settings

ROTATE = """
WITH claimed AS (
    UPDATE refresh_tokens AS t SET used_at = $2
    FROM auth_sessions AS s JOIN users AS u ON u.id = s.user_id
    WHERE t.token_hash = $1 AND t.used_at IS NULL AND s.id = t.session_id
      AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_used_at > $3 AND u.is_active
    RETURNING t.session_id, s.user_id, s.client_id, s.created_at, s.scopes, s.amr, u.is_verified, u.roles
), touched AS (
    UPDATE auth_sessions SET last_used_at = $2 WHERE id = (SELECT session_id FROM claimed)
), successor AS (
    INSERT INTO refresh_tokens (token_hash, session_id, created_at) SELECT $4, session_id, $2 FROM claimed
), audited AS (
    INSERT INTO audit_events (occurred_at, event, user_id, session_id, ip_address, user_agent)
    SELECT $2, 'token.refreshed', user_id, session_id, $5, $6 FROM claimed
)
SELECT session_id, user_id, client_id, created_at, scopes, amr, is_verified, roles FROM claimed
"""
INVALID_GRANT = orjson.dumps({"error": "invalid_grant", "error_description": "Invalid refresh token."})
NOT_FOUND = orjson.dumps({"error": "not_found"})
# As the API clips them (app/audit/models.py).
MAX_IP_LENGTH = 64
MAX_USER_AGENT_LENGTH = 512


class _State:
    """One worker's pool and signing key, made at startup."""

    pool: asyncpg.Pool | None = None
    key: Any = None
    kid = ""


async def _open() -> None:
    settings = get_settings()
    dsn, size = database_pool_settings()
    # Opened by the warm-up and closed 10 s after the run: the ceilings' pools would otherwise hold their
    # connections through the whole bench, next to the API's, on a server with max_connections 100.
    _State.pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=size,
        max_inactive_connection_lifetime=10,
        reset=_no_reset,
        server_settings={"application_name": "pyauth-bench-rotation", "synchronous_commit": "on"},
    )
    if settings.JWT_ALGORITHM == "ES256":
        _State.key = ec.generate_private_key(ec.SECP256R1())
    else:
        _State.key = ed25519.Ed25519PrivateKey.generate()
    _State.kid = secrets.token_urlsafe(8)


async def _close() -> None:
    if _State.pool is not None:
        await _State.pool.close()


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def client_address(scope: Scope) -> str | None:
    """The right-most X-Forwarded-For hop (the load generator's network is the API's trusted proxy),
    else the peer."""
    forwarded = _header(scope, b"x-forwarded-for")
    if forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()[:MAX_IP_LENGTH]
    client = scope.get("client")
    return str(client[0]) if client else None


def access_token_claims(row: dict[str, Any], *, now: float, settings: Any) -> dict[str, Any]:
    """The claims of the access token pyauth issues on a refresh of the session in `row`
    (app/auth/issuing.py `issue_tokens`), for the built-in client's audience and lifetime."""
    issued_at = math.floor(now)
    claims: dict[str, Any] = {
        "email_verified": row["is_verified"],
        "roles": list(row["roles"]),
        "iss": settings.issuer,
        "aud": settings.JWT_AUDIENCE,
        "sub": str(row["user_id"]),
        "client_id": row["client_id"],
        "exp": issued_at + settings.ACCESS_TOKEN_TTL_SECONDS,
        "iat": issued_at,
        "nbf": issued_at,
        "jti": secrets.token_urlsafe(16),
        "sid": str(row["session_id"]),
    }
    if row["scopes"]:
        claims["scope"] = " ".join(row["scopes"])
    if row["amr"]:
        claims["amr"] = list(row["amr"])
        claims["acr"] = acr_of(row["amr"])
    claims["auth_time"] = math.floor(row["created_at"].timestamp())
    return claims


async def refresh_rotation(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _open, _close)
        return
    if scope["type"] != "http":
        return
    if scope["method"] != "POST" or scope["path"] != "/auth/token":
        await _answer(send, 404, NOT_FOUND)
        return
    form = urllib.parse.parse_qs((await _body(receive)).decode("latin-1"))
    presented = form.get("refresh_token", [""])[0]
    if form.get("grant_type") != ["refresh_token"] or not presented:
        await _answer(send, 400, INVALID_GRANT)
        return
    settings = get_settings()
    now_seconds = time.time()
    now = datetime.fromtimestamp(now_seconds, UTC)
    successor = secrets.token_urlsafe(32)
    user_agent = _header(scope, b"user-agent")
    assert _State.pool is not None
    row = await _State.pool.fetchrow(
        ROTATE,
        hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest(),
        now,
        now - timedelta(seconds=settings.SESSION_IDLE_TTL_SECONDS),
        hashlib.sha256(successor.encode()).digest(),
        client_address(scope),
        user_agent[:MAX_USER_AGENT_LENGTH] if user_agent else None,
    )
    if row is None:
        await _answer(send, 400, INVALID_GRANT)
        return
    claims = access_token_claims(dict(row), now=now_seconds, settings=settings)
    access_token = jwt.encode(
        claims, _State.key, algorithm=settings.JWT_ALGORITHM, headers={"kid": _State.kid, "typ": "at+jwt"}
    )
    answer: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": settings.ACCESS_TOKEN_TTL_SECONDS,
        "refresh_token": successor,
    }
    if row["scopes"]:
        answer["scope"] = " ".join(row["scopes"])
    await _answer(send, 200, orjson.dumps(answer))
