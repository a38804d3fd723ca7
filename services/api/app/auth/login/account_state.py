"""Login step: the account may sign in (active; verified, unless ALLOW_UNVERIFIED_LOGIN).

An inactive account is refused like a wrong password and counts as a failure. An unverified one is told
so, since its password was right, and the attempt is given back: it was no guess.
"""

from app.auth.errors import EmailNotVerified
from app.auth.login.flow import LoginFlow, LoginStep


class AccountState(LoginStep):
    async def run(self, flow: LoginFlow) -> None:
        user = flow.user
        if user is None:
            await flow.refuse("unknown_account")
        if not user.is_active:
            await flow.refuse("inactive")
        if not user.is_verified and not flow.settings.ALLOW_UNVERIFIED_LOGIN:
            await flow.give_back()
            await flow.refuse("unverified", counts=False, error=EmailNotVerified())
