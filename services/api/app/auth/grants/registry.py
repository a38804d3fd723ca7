"""The table the token endpoint looks grant types up in, and what it derives from it: the form the
endpoint reads, the check of each grant's required fields, and the OpenAPI request body.

Adding a grant type is a handler module (see `base.GrantHandler`) and its line in `GRANTS`.
"""

from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, create_model
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import UnsupportedGrantType
from app.auth.grants import client_auth
from app.auth.grants.authorization_code import AuthorizationCodeGrant
from app.auth.grants.base import FormField, GrantHandler, TokenForm
from app.auth.grants.client_credentials import ClientCredentialsGrant
from app.auth.grants.password import PasswordGrant
from app.auth.grants.refresh_token import RefreshTokenGrant
from app.clients.models import ClientType, OAuthClient
from app.clients.service import EnabledClientRead
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import OAuthError
from app.core.forms import form_items
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
        client_read: EnabledClientRead | None = None,
    ) -> tuple[GrantHandler, OAuthClient]:
        """The grant's handler and the authenticated client, which is allowed the grant: every grant's
        client authentication happens here, once (with the client's row from `client_read`, where it was
        sent ahead: `client_auth.client_read`)."""
        handler = self.handler_for(form)
        if not handler.enabled(settings):
            raise UnsupportedGrantType(f"grant_type={handler.grant_type} is turned off on this server.")
        credentials = client_auth.credentials_of(form, authorization)
        oauth_client = await client_auth.authenticate_client(db, credentials, ctx=ctx, read=client_read)
        client_auth.check_grant_allowed(
            oauth_client, handler.granted_as or handler.grant_type, handler.client_types
        )
        return handler, oauth_client

    async def read_form(self, request: Request) -> TokenForm:
        """Every registered field of the request's form. Each is optional (an empty value is an absent
        one), bounded in length (a longer one is a 422 before any handler runs, located at `body.<name>`
        as FastAPI's validation of a form says it) and given once (RFC 6749 §3.2, else invalid_request).

        The token endpoint reads its form itself rather than declaring a FastAPI `Form` model: FastAPI
        inspects each field's annotation on every request (about a tenth of a refresh's CPU), and the
        exact-route dispatch calls no FastAPI at all. The fields' schema is in `request_body_doc`."""
        items = await form_items(request)
        # The last of a repeated name's values, as FastAPI's reading took it; an empty one is absent.
        given = {name: value for name, value in dict(items).items() if value != ""}
        values = self._within_bounds(given)
        if values is None:  # pydantic says what is wrong, as FastAPI's validation of a form would
            try:
                values = self._form_model.model_validate(given).__dict__
            except ValidationError as invalid:
                raise RequestValidationError(
                    [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors()]
                ) from None
        refuse_repeated(items)
        return values

    def _within_bounds(self, given: Mapping[str, object]) -> dict[str, str | None] | None:
        """What `_form_model` makes of `given` where each registered field is a string within its length
        (nearly every request), without pydantic: every field, None where absent, names it does not know
        left out. None where any is not (an upload, too long), for the model to refuse."""
        limits = self._max_lengths
        values: dict[str, str | None] = dict.fromkeys(limits)
        for name, value in given.items():
            limit = limits.get(name)
            if limit is None:
                continue
            if not isinstance(value, str) or len(value) > limit:
                return None
            values[name] = value
        return values

    @cached_property
    def _max_lengths(self) -> dict[str, int]:
        return {field.name: field.max_length for field in self.fields}

    @cached_property
    def _form_model(self) -> type[BaseModel]:
        """Every registered field, as optional and bounded strings."""
        fields: dict[str, Any] = {
            field.name: (Annotated[str | None, Field(max_length=field.max_length)], None)
            for field in self.fields
        }
        return create_model("Body_auth_token", **fields)

    def request_body_doc(self) -> dict[str, Any]:
        """The form's fields and what their types cannot say: which fields each grant requires, as one
        `oneOf` branch per grant, for the operation's `openapi_extra`."""
        schema = self._form_model.model_json_schema()
        schema["oneOf"] = [_grant_schema(handler) for handler in self.handlers.values()]
        return {"requestBody": {"required": True, "content": {FORM: {"schema": schema}}}}


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
