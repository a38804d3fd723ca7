"""Login steps: a second factor, for an account that has one.

`SecondFactor` runs after the password and the account state, so it answers only a client that proved the
password: a wrong password is refused exactly as for an account without a factor, and nothing tells a
guesser whether the account has one. `AccountLookup` reads the factors before the hash, in the query
of the account, known or not (an unknown one's lookup finds nothing at the same cost). For an account
with a factor, the login stops at `SecondFactor` with `MfaRequired`; the attempt is given back (the
password was right: no guess), and the password grant answers an `mfa_token` that the mfa grant
completes the login with.

The factors themselves are the `mfa` package's, which builds on `auth` (sessions, tokens, grants); so that
`auth` does not import it back, the application hands its `SecondFactors` to `use()` at start
(`app.main`). Until then a login that reaches this step fails closed.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.login.flow import LoginFlow, LoginStep
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.database import CteWrite
from app.core.errors import OAuthError
from app.users.models import User

if TYPE_CHECKING:
    from app.clients.models import OAuthClient


class MfaRequired(OAuthError):
    """The password was right and the account has a second factor: the token endpoint answers 403 with an
    `mfa_token` and the `methods` that can complete the login; nothing is issued."""

    status_code = 403
    code = "mfa_required"
    message = "A second factor is required: complete the login with the mfa grant."

    def __init__(
        self, *, user: User, amr: Sequence[str], methods: Sequence[str], writes: Sequence[CteWrite] = ()
    ) -> None:
        super().__init__()
        self.user = user
        self.amr = list(amr)
        self.methods = list(methods)
        self.body_extra = {"methods": self.methods}
        # What the login has not sent yet (its attempt given back): the mfa_token's statement carries it.
        self.writes = tuple(writes)


class SecondFactors(Protocol):
    async def account_and_methods(self, db: AsyncSession, email: str) -> tuple[User | None, list[str]]:
        """The account of `email` (None: none) and what can complete its login (empty: the password alone
        signs in), in one query."""
        ...

    async def challenge(
        self,
        db: AsyncSession,
        required: MfaRequired,
        *,
        oauth_client: "OAuthClient",
        scopes: Sequence[str],
        device_token: str | None,
        settings: Settings,
        ctx: RequestContext,
    ) -> NoReturn:
        """Store the mfa_token of the interrupted login, put it in the answer and raise `required`."""
        ...


class _Unset:
    async def account_and_methods(self, db: AsyncSession, email: str) -> tuple[User | None, list[str]]:
        raise RuntimeError("no second-factor provider: app.auth.login.second_factor.use() was not called")

    async def challenge(self, db: AsyncSession, required: MfaRequired, **_: object) -> NoReturn:
        raise RuntimeError("no second-factor provider")


_provider: SecondFactors = _Unset()


def use(provider: SecondFactors) -> None:
    global _provider  # noqa: PLW0603 - set once at start, read by every login
    _provider = provider


def second_factors() -> SecondFactors:
    return _provider


class AccountLookup(LoginStep):
    """The account of the email (or None) and its second factors, in one query before the password is
    hashed (the factors' provider's): after the hash, a login without a factor has nothing left to read.
    An unknown account costs the same query, so the lookup tells a guesser nothing."""

    async def run(self, flow: LoginFlow) -> None:
        flow.user, flow.factor_methods = await _provider.account_and_methods(flow.db, flow.request.email)


class SecondFactor(LoginStep):
    async def run(self, flow: LoginFlow) -> None:
        user = flow.user
        if user is None:
            return
        methods = flow.factor_methods
        if methods is None:  # fails closed: a pipeline must look the account up with `AccountLookup`
            raise RuntimeError("SecondFactor runs after AccountLookup, which reads the factors")
        if not methods:
            return
        writes = await flow.give_back_with_next()  # the password was right: no guess
        raise MfaRequired(user=user, amr=flow.amr, methods=methods, writes=writes)
