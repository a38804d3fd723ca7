"""Login step: reserve the attempt in the throttle before any password is hashed.

The attempt counts on the device's own counter when the client presents a valid device token for this
account, and on the account's counter otherwise; a refused reservation is answered without hashing.
A complete login clears the account's count (which also lifts its lock) and replaces the device token.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import AuditEvent
from app.audit.service import record
from app.auth.login.flow import LoginFlow, LoginStep
from app.core.database import CteWrite, commit_before_refusing, each_statement_commits, execute_write
from app.metrics import instruments as metrics
from app.ratelimit import devices
from app.ratelimit import service as ratelimit
from app.ratelimit.models import LoginDevice


@dataclass
class LoginAttempt:
    """One password login's place in the throttle, given back when its check did not fail."""

    db: AsyncSession
    email: str
    device: LoginDevice | None
    reservation: ratelimit.Reservation

    def audit_details(self, *, counts: bool) -> dict[str, object]:
        details: dict[str, object] = {}
        if counts:
            details["consecutive_failures"] = self.reservation.failures
        if self.device is not None:
            details["known_device"] = True
        return details

    async def release(self) -> None:
        await execute_write(self.db, self.released())
        # Given back whatever the request's outcome: the error that may follow rolls the request back.
        await commit_before_refusing(self.db)

    def released(self) -> CteWrite:
        if self.device is not None:
            return devices.attempt_released(self.device)
        return ratelimit.attempt_released(self.email)


class AttemptReservation(LoginStep):
    async def run(self, flow: LoginFlow) -> None:
        db, email, settings, now = flow.db, flow.request.email, flow.settings, flow.ctx.now
        device = await devices.recognise(db, flow.request.device_token, email, settings=settings, now=now)
        if device is not None:
            reservation = await devices.reserve_attempt(db, device, settings=settings, now=now)
        else:
            reservation = await ratelimit.reserve_attempt(db, email, settings=settings, now=now)
        flow.known_device = device is not None
        if reservation.granted:
            flow.attempt = LoginAttempt(db, email, device, reservation)
            return
        reason = "reset_required" if reservation.locked else "throttled"
        metrics.count_login(reason)
        await each_statement_commits(db)  # the refusal's audit row alone: one round trip
        await record(
            db,
            AuditEvent.LOGIN_THROTTLED,
            ctx=flow.ctx,
            reason=reason,
            details={"known_device": True} if device else None,
        )
        await commit_before_refusing(db)
        if reservation.locked:
            raise ratelimit.PasswordResetRequired()
        raise ratelimit.LoginThrottled(headers=reservation.retry_after_header)

    async def succeeded(self, flow: LoginFlow) -> None:
        # A success from anywhere clears the account's count, which also lifts its lock.
        await flow.write(ratelimit.failures_cleared(flow.request.email, ratelimit.AttemptKind.LOGIN))
        if flow.user is None:  # no step let an unknown account through; nothing to issue a token for
            return
        device = flow.attempt.device if isinstance(flow.attempt, LoginAttempt) else None
        settings, now = flow.settings, flow.ctx.now
        token, stored = devices.replacement(flow.user.id, settings=settings, now=now, replaces=device)
        await flow.write(stored)
        flow.device_token = token
