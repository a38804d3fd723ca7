"""What a login carries from step to step, and what a step is.

A step reads the flow, may refuse (record why and raise) and may add the method it checked to `amr`.
Once every step has run, each step's `succeeded` runs in the same order: the effects a step owns that
only a complete login may have (clearing a failure count, issuing a device token, a rehash). A flow made
with `defer_writes` keeps the writes of those effects (`write`) for the statement that starts the login's
session (`app.auth.sessions.start_session`), which sends them in its own round trip and transaction: the
password grant's. Without it (the hosted sign-in) each is sent at once, in the request's transaction.
"""

import logging
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.errors import InvalidCredentials, InvalidGrant
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import CteWrite, commit_before_refusing, execute_write
from app.metrics import instruments as metrics
from app.passwords.hashing import PasswordHasher
from app.users.models import User

log = logging.getLogger("pyauth.auth")


@dataclass(frozen=True)
class LoginRequest:
    """What the client sent: the account's canonical email, the normalized password, and the device
    token of an earlier login, if any."""

    email: str
    password: str
    device_token: str | None = None


class CountedAttempt(Protocol):
    """A reserved place in a failure counter (see `throttle.py`)."""

    def audit_details(self, *, counts: bool) -> dict[str, object]: ...

    async def release(self) -> None: ...

    def released(self) -> CteWrite:
        """`release` as a write for the statement that follows to carry, committed with it."""
        ...


@dataclass
class LoginFlow:
    db: AsyncSession
    request: LoginRequest
    hasher: PasswordHasher
    settings: Settings
    ctx: RequestContext
    user: User | None = None
    attempt: CountedAttempt | None = None
    known_device: bool = False
    factor_methods: list[str] | None = None  # the account's second factors, once looked up
    device_token: str | None = None  # issued by a step once the login succeeded
    amr: list[str] = field(default_factory=list)  # RFC 8176 method values, in the order they passed
    defer_writes: bool = False
    writes: list[CteWrite] = field(default_factory=list)  # kept for the session's statement

    async def write(self, write: CteWrite) -> None:
        """A success effect's write: kept (`defer_writes`), else sent now in the request's transaction."""
        if self.defer_writes:
            self.writes.append(write)
        else:
            await execute_write(self.db, write)

    async def give_back(self) -> None:
        """Return the reserved attempt: the check did not fail (or could not run)."""
        if self.attempt is not None:
            await self.attempt.release()

    async def give_back_with_next(self) -> tuple[CteWrite, ...]:
        """`give_back` for a flow that ends with one more statement: with `defer_writes`, the write that
        returns the attempt, for that statement to carry (nothing is sent here); else it is given back
        now and there is nothing to carry."""
        if self.attempt is None:
            return ()
        if self.defer_writes:
            return (self.attempt.released(),)
        await self.attempt.release()
        return ()

    async def refuse(
        self, reason: str, *, counts: bool = True, error: InvalidGrant | None = None
    ) -> NoReturn:
        """Record a failed login and raise. The record is committed, because the error response that
        follows rolls the request back."""
        details = self.attempt.audit_details(counts=counts) if self.attempt is not None else {}
        user_id = self.user.id if self.user else None
        await record(
            self.db,
            AuditEvent.LOGIN_FAILED,
            ctx=self.ctx,
            user_id=user_id,
            reason=reason,
            details=details or None,
        )
        await commit_before_refusing(self.db)
        metrics.count_login(reason)
        log.info("login failed: %s user=%s", reason, user_id or "-")
        raise error or InvalidCredentials()


class LoginStep:
    """One step of a login. `run` checks (or refuses); `succeeded` applies the step's effects once the
    whole login passed."""

    async def run(self, flow: LoginFlow) -> None:
        raise NotImplementedError

    async def succeeded(self, flow: LoginFlow) -> None:
        return None
