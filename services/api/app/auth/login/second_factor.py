"""Login step: a second factor, for an account that has one (`app.mfa.methods`).

It runs after the password and the account state, so it answers only a client that proved the password:
a wrong password is refused exactly as for an account without a factor, and nothing tells a guesser
whether the account has one. For an account with a factor, the login stops here with `MfaRequired`; the
attempt is given back (the password was right: no guess), and the grant answers an `mfa_token` that the
mfa grant (`app.auth.grants.mfa`) completes the login with.
"""

from app.auth.login.flow import LoginFlow, LoginStep
from app.mfa.errors import MfaRequired
from app.mfa.methods import enrolled_methods


class SecondFactor(LoginStep):
    async def run(self, flow: LoginFlow) -> None:
        user = flow.user
        if user is None:
            return
        methods = await enrolled_methods(flow.db, user)
        if not methods:
            return
        await flow.give_back()
        raise MfaRequired(user=user, amr=list(flow.amr), methods=methods)
