"""The table the token endpoint looks grant types up in, and what it derives from it: the form the
endpoint reads, the check of each grant's required fields, and the OpenAPI request body.

Adding a grant type is a handler module (see `base.GrantHandler`) and its line in `GRANTS`.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Form, Request
from pydantic import Field, create_model
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import UnsupportedGrantType
from app.auth.grants import client_auth
from app.auth.grants.authorization_code import AuthorizationCodeGrant
from app.auth.grants.base import FormField, GrantHandler
from app.auth.grants.client_credentials import ClientCredentialsGrant
from app.auth.grants.password import PasswordGrant
from app.auth.grants.refresh_token import RefreshTokenGrant
from app.clients.models import ClientType, OAuthClient
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import OAuthError
from app.core.parameters import refuse_repeated
from app.mfa.grant import MfaGrant

FORM = "application/x-www-form-urlencoded"
# Fields of every token request (RFC 6749 §3.2, §3.3, §2.3.1). `scope` narrows what the grant gives
# (`app.auth.scopes`); `client_id` and `client_secret` authenticate the client (`client_auth`).
COMMON_FIELDS = (
    FormField("grant_type", max_length=64),
    FormField("scope", max_length=1024, required=False),
    FormField("client_id", max_length=256, required=False),
    FormField("client_secret", max_length=256, required=False),
)

TokenForm = Mapping[str, str | None]


class GrantRegistry:
    def __init__(self, *handlers: GrantHandler) -> None:
        self.handlers = {handler.grant_type: handler for handler in handlers}
        fields: dict[str, FormField] = {field.name: field for field in COMMON_FIELDS}
        for handler in handlers:
            for field in handler.fields:
                known = fields.setdefault(field.name, field)
                if known.max_length != field.max_length:  # one form, so one limit per field name
                    raise ValueError(f"form field {field.name!r} is declared with two lengths")
        self.fields = tuple(fields.values())

    def served_grant_types(self, settings: Settings) -> list[str]:
        """The grant types the token endpoint serves with these settings, in registration order: what
        discovery lists, and what a client may be registered for."""
        return [name for name, handler in self.handlers.items() if handler.enabled(settings)]

    def handler_for(self, form: TokenForm) -> GrantHandler:
        """The handler of the form's grant type, once the grant's required fields are present."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("grant_type is required.")
        handler = self.handlers.get(grant_type)
        if handler is None:
            listed = _listed([f"'{name}'" for name in self.handlers], "or")
            raise UnsupportedGrantType(f"grant_type must be {listed}.")
        required = [field for field in handler.fields if field.required]
        if any(_missing(form.get(field.name), field) for field in required):
            names = _listed([field.name for field in required], "and")
            verb = "is" if len(required) == 1 else "are"
            raise OAuthError(f"{names} {verb} required for grant_type={grant_type}.")
        return handler

    async def resolve(
        self,
        form: TokenForm,
        authorization: str | None,
        *,
        db: AsyncSession,
        settings: Settings,
        ctx: RequestContext,
    ) -> tuple[GrantHandler, OAuthClient]:
        """The grant's handler and the authenticated client, which is allowed the grant: every grant's
        client authentication happens here, once."""
        handler = self.handler_for(form)
        if not handler.enabled(settings):
            raise UnsupportedGrantType(f"grant_type={handler.grant_type} is turned off on this server.")
        credentials = client_auth.credentials_of(form, authorization)
        oauth_client = await client_auth.authenticate_client(db, credentials, ctx=ctx)
        client_auth.check_grant_allowed(
            oauth_client, handler.granted_as or handler.grant_type, handler.client_types
        )
        return handler, oauth_client

    def form_dependency(self) -> Callable[..., Awaitable[TokenForm]]:
        """A FastAPI dependency that reads every registered field from the form. Each is optional,
        bounded in length (a longer one is a 422 before any handler runs) and given once (RFC 6749 §3.2,
        else invalid_request). The fields are one model, so a request is validated in one pass rather
        than field by field (FastAPI inspected each optional `Form` parameter's annotation on every
        request: about a tenth of a refresh's CPU)."""
        fields: dict[str, Any] = {
            field.name: (Annotated[str | None, Field(max_length=field.max_length)], None)
            for field in self.fields
        }
        # The name FastAPI gave the form of separate parameters, kept so the document does not change.
        model = create_model("Body_auth_token", **fields)

        async def token_form(request: Request, form: Annotated[model, Form()]) -> TokenForm:
            refuse_repeated((await request.form()).multi_items())  # the form FastAPI parsed, kept
            values: TokenForm = form.__dict__
            return values

        return token_form

    def request_body_doc(self) -> dict[str, Any]:
        """What the form fields' types cannot say: which fields each grant requires, as one `oneOf`
        branch per grant, for the operation's `openapi_extra`."""
        return {
            "requestBody": {
                "required": True,
                "content": {FORM: {"schema": {"oneOf": [_grant_schema(h) for h in self.handlers.values()]}}},
            }
        }


def _listed(words: list[str], conjunction: str) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _missing(value: str | None, field: FormField) -> bool:
    return value is None or len(value) < field.min_length


def _client_authentication(handler: GrantHandler) -> str:
    methods = []
    if ClientType.PUBLIC in handler.client_types:
        methods.append("none (public clients; no client_id: the built-in client)")
    if ClientType.CONFIDENTIAL in handler.client_types:
        methods.append("client_secret_basic or client_secret_post (confidential clients)")
    return ", ".join(methods)


def _grant_schema(handler: GrantHandler) -> dict[str, Any]:
    codes = sorted({error.code for error in handler.errors})
    return {
        "title": handler.title,
        "description": f"Client authentication: {_client_authentication(handler)}. "
        f"Errors: {', '.join(codes)}.",
        "required": ["grant_type", *(field.name for field in handler.fields if field.required)],
        "properties": {
            "grant_type": {"const": handler.grant_type},
            **{field.name: field.schema() for field in handler.fields},
        },
    }


GRANTS = GrantRegistry(
    AuthorizationCodeGrant(),
    PasswordGrant(),
    RefreshTokenGrant(),
    ClientCredentialsGrant(),
    MfaGrant(),
)
