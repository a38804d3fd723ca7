"""What a grant handler declares (its form fields, the client types it serves, the errors it answers)
and what it is given (`TokenRequest`)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.issuing import IssuedTokens
from app.clients.models import ClientType, OAuthClient
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import PyauthError
from app.keys.keyring import KeyRing
from app.passwords.hashing import PasswordHasher

if TYPE_CHECKING:  # the refresh grant's; the service imports the grants' helpers
    from app.auth.service import RotationAhead


# A token request's form as the endpoint reads it (`registry.GrantRegistry.read_form`): every registered
# field, None where absent.
TokenForm = Mapping[str, str | None]


@dataclass(frozen=True)
class FormField:
    """One form field of a grant. Every field is optional in the form itself, so that a missing one gets
    RFC 6749's `invalid_request` rather than a validation error; `required` is checked per grant."""

    name: str
    max_length: int
    required: bool = True
    min_length: int = 1  # 0: an empty value counts as given (a password is checked, not presence-tested)
    description: str | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class TokenRequest:
    """A token request, once its grant type is known: the form and what handlers work with."""

    form: TokenForm
    cookies: Mapping[str, str]
    db: AsyncSession
    hasher: PasswordHasher
    keyring: KeyRing
    settings: Settings
    ctx: RequestContext
    oauth_client: OAuthClient  # authenticated, and allowed this grant (`client_auth`)
    # A refresh's rotation, sent with the rate limit's hit (`service.RotationAhead`); None: not sent.
    rotation_ahead: "RotationAhead | None" = None


class GrantHandler:
    """One grant type. Subclasses set the class attributes and implement `issue`."""

    grant_type: ClassVar[str]
    title: ClassVar[str]  # in the OpenAPI document
    fields: ClassVar[tuple[FormField, ...]]
    # The client types the grant serves; every client also needs the grant in its `grant_types`.
    # Clients authenticate as `client_auth` says, the same for every grant.
    client_types: ClassVar[frozenset[ClientType]] = frozenset(ClientType)
    errors: ClassVar[tuple[type[PyauthError], ...]]  # what `issue` may raise, for the document
    # The grant type a client must be registered for to use this one: its own, unless it is the second half
    # of another grant (the mfa grant continues a password grant, so a password client may use it).
    granted_as: ClassVar[str | None] = None

    def enabled(self, settings: Settings) -> bool:
        """Whether the server serves this grant at all (a setting may turn one off)."""
        return True

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        raise NotImplementedError
