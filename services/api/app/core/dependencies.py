"""Typed access to what the lifespan keeps on `app.state`, as `Annotated` dependency aliases.

Only what belongs to no domain lives here; a domain's own aliases live in that domain (`HasherDep` in
`app.passwords.dependencies`, `KeyRingDep` in `app.keys.dependencies`), so `core` imports no domain.
"""

import functools
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import Clock
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import get_db
from app.core.logging import request_id as current_request_id
from app.core.templating import negotiate_locale

MAX_USER_AGENT = 512
# scope="function": the session is committed and closed when the endpoint returns, before the response
# is sent, so a failed commit becomes an error response instead of a success that did not happen.
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def _context(request: Request, clock: Annotated[Clock, Depends(_clock)]) -> RequestContext:
    """The request's context, built once per request (FastAPI caches a dependency within a request, so the
    rate limit and the endpoint see the same `now`)."""
    return request_context(request, clock)


def request_context(request: Request, clock: Clock) -> RequestContext:
    """Who asked and when: the clock's now, the client's address (`client_ip`), its user agent (bounded)
    and the request id."""
    user_agent = request.headers.get("user-agent")
    return RequestContext(
        now=clock.now(),
        ip_address=client_ip(request, request.app.state.trusted_proxies),
        user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
        request_id=getattr(request.state, "request_id", None) or current_request_id.get(),
    )


def trusted_networks(cidrs: list[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(cidr, strict=False) for cidr in cidrs)


def client_ip(request: Request, trusted: tuple[IPv4Network | IPv6Network, ...]) -> str | None:
    """The peer address; behind trusted proxies, the right-most X-Forwarded-For hop that is not one of
    them. A client can prepend anything to X-Forwarded-For, so only what trusted proxies appended counts."""
    peer = request.client.host if request.client else None
    if not trusted or peer is None or not _is_trusted_peer(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # not an address: nothing before it can be told apart from what a client wrote
            return peer
        if not _within(address, trusted):
            return hop
    return peer


def _address(value: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(value)
    except ValueError:
        return None


def _within(address: IPv4Address | IPv6Address, trusted: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    return any(address in network for network in trusted)


@functools.lru_cache(maxsize=256)
def _is_trusted_peer(peer: str, trusted: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    """Whether the connection's peer is a trusted proxy. Kept for the last peers: behind a proxy every
    request comes from the same few addresses, each parsed once instead of on every request."""
    address = _address(peer)
    return address is not None and _within(address, trusted)


def no_store(response: Response) -> None:
    """Router dependency for responses that hold account data: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"


SettingsDep = Annotated[Settings, Depends(_settings)]
ClockDep = Annotated[Clock, Depends(_clock)]
ContextDep = Annotated[RequestContext, Depends(_context)]


async def _request_locale(request: Request) -> str:
    return negotiate_locale(request.headers.get("accept-language"))


# The locale the request's Accept-Language prefers among the supported ones (English by default).
RequestLocale = Annotated[str, Depends(_request_locale)]
