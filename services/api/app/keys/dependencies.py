"""`KeyRingDep`: the signing key ring the lifespan keeps on `app.state`, as a dependency alias."""

from typing import Annotated

from fastapi import Depends, Request

from app.keys.keyring import KeyRing


async def _keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


KeyRingDep = Annotated[KeyRing, Depends(_keyring)]
