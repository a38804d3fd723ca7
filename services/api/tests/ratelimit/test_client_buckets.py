"""Whom the per-IP limits count: an IPv4 client per address, an IPv6 client per /64, since a host picks
its own addresses within its /64 (RFC 8981)."""

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import ManualClock
from app.core.dependencies import trusted_networks
from app.ratelimit.service import client_bucket

REFRESH_FORM = {"grant_type": "refresh_token", "refresh_token": "x" * 43}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:DB8:1:2::9"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
    ],
)
def test_addresses_of_one_ipv6_64_share_a_bucket(first: str, second: str) -> None:
    assert client_bucket(first) == client_bucket(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:3::1"),
        ("203.0.113.5", "203.0.113.6"),
        ("203.0.113.5", "::ffff:203.0.113.6"),
    ],
)
def test_other_ipv6_64s_and_other_ipv4_addresses_get_their_own_bucket(first: str, second: str) -> None:
    assert client_bucket(first) != client_bucket(second)


def test_bucket_names() -> None:
    assert client_bucket("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_bucket("203.0.113.5") == "203.0.113.5"
    assert client_bucket(None) == "unknown"


@pytest.fixture
def limited(app: FastAPI, clock: ManualClock) -> FastAPI:
    """Token limit 4, localhost trusted as a proxy (so each request can name its client), and a window no
    earlier test has used."""
    app.state.settings = app.state.settings.model_copy(
        update={"RATE_LIMITS_ENABLED": True, "RATE_LIMIT_TOKEN": 4}
    )
    app.state.trusted_proxies = trusted_networks(["127.0.0.1/32"])
    clock.advance(timedelta(days=uuid.uuid4().int % 100_000))
    return app


def _random_64() -> str:
    """A /64 of the documentation prefix (RFC 3849) no other test uses, as its first four groups."""
    value = uuid.uuid4().int
    return f"2001:db8:{value % 0xFFFF:x}:{value // 0xFFFF % 0xFFFF:x}"


async def test_an_ipv6_client_cycling_addresses_in_its_64_is_limited_as_one(
    limited: FastAPI, client: httpx.AsyncClient
) -> None:
    prefix = _random_64()
    statuses = [
        (
            await client.post(
                "/auth/token", data=REFRESH_FORM, headers={"X-Forwarded-For": f"{prefix}:{host:x}::1"}
            )
        ).status_code
        for host in range(1, 6)
    ]
    assert statuses == [400, 400, 400, 400, 429]
    # Another /64 has a bucket of its own.
    other = await client.post(
        "/auth/token", data=REFRESH_FORM, headers={"X-Forwarded-For": f"{_random_64()}::1"}
    )
    assert other.status_code == 400
