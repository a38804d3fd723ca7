"""Kept only so that `core/dependencies.py` imports `KeyRing` from here until its key-ring dependency
moves into this package. New code imports `app.keys.keyring` (the ring), `app.keys.storage` (keys at
rest and rotation) or `app.keys.tokens` (access-token verification)."""

from app.keys.keyring import KeyRing

__all__ = ["KeyRing"]
