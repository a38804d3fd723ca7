"""Login step: refuse at once (503) while the password hashing queue is full, before any attempt is
counted, so that an overloaded server does not charge clients failures it never checked."""

from app.auth.login.flow import LoginFlow, LoginStep


class HashingCapacity(LoginStep):
    async def run(self, flow: LoginFlow) -> None:
        flow.hasher.refuse_when_full()
