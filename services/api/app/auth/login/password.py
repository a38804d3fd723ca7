"""Login step: the password (`amr` "pwd", RFC 8176).

The account is looked up by its email (`second_factor.AccountLookup`, with its factors, in one query);
an unknown one costs the same hash as a known one. The reserved
attempt is committed before hashing (`release_connection_before_hashing`), so the pooled connection is
not held while the hash runs.
"""

from app.auth.login.flow import LoginFlow, LoginStep
from app.core.database import release_connection_before_hashing
from app.passwords.hashing import HashQueueFull
from app.users import repository as user_repository

PASSWORD_METHOD = "pwd"  # noqa: S105 - an RFC 8176 method name, not a password


class PasswordCheck(LoginStep):
    async def run(self, flow: LoginFlow) -> None:
        # The account (or None) as `AccountLookup`, an earlier step, read it.
        hasher, password, user = flow.hasher, flow.request.password, flow.user
        await release_connection_before_hashing(flow.db)
        try:
            if user is None:
                await hasher.verify_dummy(password)
                matched = False
            else:
                matched = await hasher.verify(user.password_hash, password)
        except HashQueueFull:
            await flow.give_back()
            raise
        if user is None:
            await flow.refuse("unknown_account")
        if not matched:
            await flow.refuse("wrong_password")
        flow.amr.append(PASSWORD_METHOD)

    async def succeeded(self, flow: LoginFlow) -> None:
        user = flow.user
        if user is not None and flow.hasher.needs_rehash(user.password_hash):
            new_hash = await flow.hasher.hash(flow.request.password)
            await user_repository.set_password_hash(flow.db, user.id, new_hash)
