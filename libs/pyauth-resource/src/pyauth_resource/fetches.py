"""How many HTTP requests a verifier has sent to pyauth, by what they asked for.

Verifying a token is meant to cost no network call once the keys are cached; `AccessTokenVerifier.fetches`
lets an app (or `make bench`, around its measured loop) see that it does not, and lets a monitor notice a
resource server that keeps refetching the JWKS. The counts live in memory, per verifier.
"""

from dataclasses import dataclass, fields
from typing import Literal

FetchKind = Literal["discovery", "jwks", "introspection"]


@dataclass(frozen=True, slots=True)
class Fetches:
    """Requests sent so far. Every attempt counts: a GET retried on a fresh connection is two, and one that
    failed (pyauth unreachable) is one. `later - earlier` is what was sent in between."""

    discovery: int = 0
    jwks: int = 0
    introspection: int = 0

    @property
    def total(self) -> int:
        return self.discovery + self.jwks + self.introspection

    def __sub__(self, earlier: "Fetches") -> "Fetches":
        return Fetches(*(getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)))


class FetchCounter:
    """The running counts that one verifier's key set and introspection client add to (one event loop)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[FetchKind, int] = {"discovery": 0, "jwks": 0, "introspection": 0}

    def add(self, kind: FetchKind) -> None:
        self._counts[kind] += 1

    def snapshot(self) -> Fetches:
        return Fetches(**self._counts)
