"""`RateLimit(...)`: the per-client-IP limit of one endpoint, as a route dependency; `limit_request`, the
same count for a route that must check something else first (a hosted form checks its CSRF token)."""

from typing import Any

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.context import RequestContext
from app.core.dependencies import ContextDep, SettingsDep
from app.core.errors import PyauthError
from app.ratelimit.repository import Counted, Read
from app.ratelimit.service import RateLimited, hit


async def limit_request(
    request: Request,
    name: str,
    setting: str,
    ctx: RequestContext,
    settings: Settings,
    error: type[PyauthError] = RateLimited,
    read: Read | None = None,
    counted: Counted | None = None,
) -> None:
    """Count the request against `settings.<setting>` requests per window, under the key `name`; with
    `read`, which then takes its row, in the same round trip, or by the `counted` statement (`service.hit`).
    With rate limits off, nothing is counted, read or run."""
    if settings.RATE_LIMITS_ENABLED:
        await hit(
            request.app.state.sessionmaker,
            name=name,
            limit=getattr(settings, setting),
            settings=settings,
            ctx=ctx,
            error=error,
            read=read,
            counted=counted,
        )


def RateLimit(name: str, setting: str, error: type[PyauthError] = RateLimited) -> Any:
    """`limit_request` as a route dependency."""

    async def limit(request: Request, ctx: ContextDep, settings: SettingsDep) -> None:
        await limit_request(request, name, setting, ctx, settings, error)

    return Depends(limit)
