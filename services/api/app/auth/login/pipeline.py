"""The password login: its steps, in order, and the function that runs them.

Adding a step (a second factor, consent) is a new module with a `LoginStep` and its line in
`PASSWORD_LOGIN`; no other step changes. The per-client rate limit of the token endpoint runs before
this pipeline, as the endpoint's dependency, because it guards every grant.
"""

from collections.abc import Sequence
from typing import Final

from app.auth.errors import InvalidCredentials
from app.auth.login.account_state import AccountState
from app.auth.login.capacity import HashingCapacity
from app.auth.login.flow import LoginFlow, LoginStep
from app.auth.login.password import PasswordCheck
from app.auth.login.second_factor import AccountLookup, SecondFactor
from app.auth.login.throttle import AttemptReservation
from app.auth.sessions import Authentication

PASSWORD_LOGIN: Final[tuple[LoginStep, ...]] = (
    HashingCapacity(),  # 503 before anything is counted
    AttemptReservation(),  # throttle: 429, or a lock until a reset
    AccountLookup(),  # the account and its factors (acted on by `SecondFactor`), one query
    PasswordCheck(),  # amr "pwd": the connection goes back to the pool, the hash runs
    AccountState(),  # active, verified
    SecondFactor(),  # an account with a factor: 403 mfa_required and an mfa_token, nothing issued
)


async def authenticate(flow: LoginFlow, steps: Sequence[LoginStep] = PASSWORD_LOGIN) -> Authentication:
    """Run every step, then every step's success effects; what comes out is the finished login."""
    for step in steps:
        await step.run(flow)
    if flow.user is None or not flow.amr:  # a pipeline without a step that identifies and checks
        raise InvalidCredentials()
    for step in steps:
        await step.succeeded(flow)
    return Authentication(
        user=flow.user,
        amr=tuple(flow.amr),
        auth_time=flow.ctx.now,
        known_device=flow.known_device,
        device_token=flow.device_token,
        writes=tuple(flow.writes),
    )
