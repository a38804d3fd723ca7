"""`HasherDep`: the password hasher the lifespan keeps on `app.state`, as a dependency alias."""

from typing import Annotated

from fastapi import Depends, Request

from app.passwords.hashing import PasswordHasher


async def _hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


HasherDep = Annotated[PasswordHasher, Depends(_hasher)]
