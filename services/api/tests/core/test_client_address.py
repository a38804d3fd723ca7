"""Who the client is (`app.core.dependencies.client_ip`): the peer, or behind trusted proxies the right-most
X-Forwarded-For hop that is not one of them. What the rate limits count and the audit rows record."""

import pytest
from starlette.requests import Request

from app.core.dependencies import client_ip, trusted_networks

PROXIES = trusted_networks(["10.0.0.0/8", "fd00::/8"])


def request_from(peer: str, forwarded_for: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for is not None else []
    return Request({"type": "http", "client": (peer, 50000), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # An untrusted peer is the client, whatever it says it forwards.
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # Behind a trusted proxy: the hop it appended; what the client prepended does not count.
        ("10.0.0.2", "192.0.2.66, 198.51.100.1", "198.51.100.1"),
        # Through two trusted proxies: the right-most hop that is not one of them.
        ("10.0.0.2", "192.0.2.66, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        ("fd00::2", "2001:db8::7, fd00::9", "2001:db8::7"),
        # A hop that is not an address: nothing left of it can be trusted, the proxy is all that is known.
        ("10.0.0.2", "198.51.100.1, not-an-address", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.1, not-an-address, 10.0.0.9", "10.0.0.2"),
        # Only trusted hops, or none: the proxy itself.
        ("10.0.0.2", "10.0.0.9", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", " , ", "10.0.0.2"),
    ],
)
def test_the_client_is_the_peer_or_the_last_hop_appended_by_a_trusted_proxy(
    peer: str, forwarded_for: str | None, client: str
) -> None:
    assert client_ip(request_from(peer, forwarded_for), PROXIES) == client


def test_without_trusted_proxies_forwarded_for_is_never_read() -> None:
    assert client_ip(request_from("10.0.0.2", "198.51.100.1"), ()) == "10.0.0.2"


def test_a_peer_that_is_not_an_address_is_trusted_for_nothing() -> None:
    # A test transport's peer name (httpx's "testclient") is kept as the client, never trusted.
    assert client_ip(request_from("testclient", "198.51.100.1"), PROXIES) == "testclient"
