"""Typed access to what the lifespan keeps on `app.state`, as `Annotated` dependency aliases."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.core.clock import Clock
from app.core.config import Settings
from app.keys.service import KeyRing
from app.passwords.hashing import PasswordHasher

MAX_USER_AGENT = 512


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


def _keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


@dataclass(frozen=True)
class ClientInfo:
    """Who is calling, as recorded on sessions: the peer address and the User-Agent."""

    ip_address: str | None
    user_agent: str | None


def _client(request: Request) -> ClientInfo:
    user_agent = request.headers.get("user-agent")
    return ClientInfo(
        ip_address=request.client.host if request.client else None,
        user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
    )


SettingsDep = Annotated[Settings, Depends(_settings)]
ClockDep = Annotated[Clock, Depends(_clock)]
HasherDep = Annotated[PasswordHasher, Depends(_hasher)]
KeyRingDep = Annotated[KeyRing, Depends(_keyring)]
ClientDep = Annotated[ClientInfo, Depends(_client)]
