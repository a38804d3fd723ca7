"""`RateLimit(...)`: the per-client-IP limit of one endpoint, as a route dependency."""

from typing import Any

from fastapi import Depends, Request

from app.core.dependencies import ContextDep, SettingsDep
from app.core.errors import PyauthError
from app.ratelimit.service import RateLimited, hit


def RateLimit(name: str, setting: str, error: type[PyauthError] = RateLimited) -> Any:
    """Count the request against `settings.<setting>` requests per window, under the key `name`."""

    async def limit(request: Request, ctx: ContextDep, settings: SettingsDep) -> None:
        if settings.RATE_LIMITS_ENABLED:
            await hit(
                request.app.state.sessionmaker,
                name=name,
                limit=getattr(settings, setting),
                settings=settings,
                ctx=ctx,
                error=error,
            )

    return Depends(limit)
