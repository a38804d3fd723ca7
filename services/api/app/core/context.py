"""`RequestContext`: what a service needs to know about the call it serves, as one argument.

When it happens (`now`, read once from the app's clock), who calls from where (the client address and the
User-Agent, as audit rows and sessions record them) and the request id (as log lines carry it). Built once
per request by `app.core.dependencies.ContextDep`; a job that serves no request (the CLI, the first admin
at startup) builds one with `RequestContext.background(now)`. No HTTP framework is imported here, so that
services and repositories never need one.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RequestContext:
    now: datetime
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def background(cls, now: datetime) -> "RequestContext":
        """The context of work no client asked for: a time, and nobody calling."""
        return cls(now=now)
