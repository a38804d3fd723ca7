"""The side-by-side comparison of `make bench`: pyauth's `me` against `GET /users/me` of a plain FastAPI +
async SQLAlchemy app with HS256 JWTs (bench/sidebyside/tutorial_app.py), run in the same sitting, on the
same database server, with the API's server options, the same wrk script and connections, right after
`me`. The driver signs the app's tokens (`hs256_token`, standard library) with the secret bench/run.sh
made for this run; each token's `sub` is a bench account's id, so both read the same rows.
Target: pyauth's `me` at least `TARGET_TIMES` the app's requests per second.
"""

import base64
import hashlib
import hmac
import json
from typing import Any

TARGET_TIMES = 2.0
NAME = "plain FastAPI + async SQLAlchemy, HS256 JWT, one ORM query"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret: str, subject: str, expires_at: int) -> str:
    """A JWT (RFC 7519) signed with HMAC-SHA-256, `{"sub": subject, "exp": expires_at}`, as a tutorial's
    login endpoint issues it."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = _b64url(json.dumps({"sub": subject, "exp": expires_at}, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64url(signature)}"


def row(me: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """pyauth's `me` run and the side-by-side app's (each `Run.as_dict()`), and how many times its rate is."""
    other_rate = other["requests_per_second"]
    times = me["requests_per_second"] / other_rate if other_rate else None
    return {
        "name": NAME,
        "me": {key: me[key] for key in ("requests_per_second", "latency_ms", "errors", "timeouts")},
        "side_by_side": other,
        "times": None if times is None else round(times, 2),
        "target_times": TARGET_TIMES,
        "meets_target": times is not None and times >= TARGET_TIMES,
    }


def markdown(comparison: dict[str, Any]) -> list[str]:
    me, other = comparison["me"], comparison["side_by_side"]
    return [
        "",
        "## Side by side: a plain FastAPI + SQLAlchemy `/users/me`",
        "",
        "The common hand-rolled setup (bench/sidebyside/tutorial_app.py): FastAPI's `OAuth2PasswordBearer`, "
        "an HS256 JWT decoded with PyJWT, an `AsyncSession` per request, `select(User).where(User.id == "
        "sub)`, a pydantic response model; no session check, rate limit or audit. Same sitting, same "
        "database server (it reads pyauth's `users` table, read-only), the API's server options and pool "
        "size, the same wrk script and connections, right after `me`.",
        "",
        "| app | req/s | p50 ms | p99 ms | errors | timeouts |",
        "|---|--:|--:|--:|--:|--:|",
        f"| pyauth `me` | {me['requests_per_second']:,.1f} | {me['latency_ms']['p50']:.2f} "
        f"| {me['latency_ms']['p99']:.2f} | {me['errors']} | {me['timeouts']} |",
        f"| {NAME} | {other['requests_per_second']:,.1f} | {other['latency_ms']['p50']:.2f} "
        f"| {other['latency_ms']['p99']:.2f} | {other['errors']} | {other['timeouts']} |",
        "",
        f"pyauth's `me`: {_each(comparison)} \N{MULTIPLICATION SIGN} its req/s "
        f"(target ≥ {comparison['target_times']:g}{_every(comparison)}: "
        f"{'yes' if comparison['meets_target'] else '**no**'}).",
    ]


def _each(comparison: dict[str, Any]) -> str:
    """`2.29`, or with several repetitions each one's: `2.29 · 2.10 · 2.31`."""
    times = comparison.get("times_each") or [comparison["times"]]
    return " · ".join("—" if value is None else format(value, ".2f") for value in times)


def _every(comparison: dict[str, Any]) -> str:
    return " in every repetition" if len(comparison.get("times_each") or ()) > 1 else ""


def console_line(comparison: dict[str, Any]) -> str:
    times = comparison["times"]
    return (
        f"side by side: pyauth me {comparison['me']['requests_per_second']:,.1f} req/s, {NAME} "
        f"{comparison['side_by_side']['requests_per_second']:,.1f} req/s: "
        f"{'-' if times is None else format(times, '.2f')} x (target >= {comparison['target_times']:g}: "
        f"{'yes' if comparison['meets_target'] else 'NO'})"
    )
