"""The token endpoint's grant registry (RFC 6749 §4): each grant type is one handler that declares its
form fields, client authentication and errors; the endpoint's dispatch, field checks and OpenAPI request
body all come from the table."""

import io
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.auth.errors import InvalidGrant, UnsupportedGrantType
from app.auth.grants.base import FormField, GrantHandler, TokenRequest
from app.auth.grants.registry import FORM, GRANTS, GrantRegistry
from app.auth.issuing import IssuedTokens
from app.core.errors import OAuthError


class DeviceCodeGrant(GrantHandler):
    """A throw-away grant (RFC 8628's shape), registered only in these tests' own registries."""

    grant_type = "urn:ietf:params:oauth:grant-type:device_code"
    title = "Device code grant"
    fields: ClassVar[tuple[FormField, ...]] = (FormField("device_code", max_length=256),)
    errors = (InvalidGrant,)

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        raise InvalidGrant()


def branch(doc: dict[str, Any], title: str) -> dict[str, Any]:
    schema = doc["requestBody"]["content"][FORM]["schema"]
    return next(b for b in schema["oneOf"] if b["title"] == title)


def test_the_registered_grants() -> None:
    # issue 11: authorization_code and client_credentials are each one handler module and its line in GRANTS.
    # issue 12: the mfa grant, the second step of a password login.
    assert list(GRANTS.handlers) == [
        "authorization_code",
        "password",
        "refresh_token",
        "client_credentials",
        "urn:pyauth:params:oauth:grant-type:mfa",
    ]


def test_a_new_grant_is_one_handler_in_the_registry() -> None:
    registry = GrantRegistry(*GRANTS.handlers.values(), DeviceCodeGrant())
    handler = registry.handler_for({"grant_type": DeviceCodeGrant.grant_type, "device_code": "abc"})
    assert isinstance(handler, DeviceCodeGrant)
    assert "device_code" in {field.name for field in registry.fields}
    documented = branch(registry.request_body_doc(), "Device code grant")
    assert documented["required"] == ["grant_type", "device_code"]
    assert documented["properties"]["grant_type"] == {"const": DeviceCodeGrant.grant_type}
    assert "invalid_grant" in documented["description"]
    with pytest.raises(UnsupportedGrantType) as refused:
        registry.handler_for({"grant_type": "urn:example:unknown"})
    assert refused.value.detail == (
        "grant_type must be 'authorization_code', 'password', 'refresh_token', 'client_credentials', "
        "'urn:pyauth:params:oauth:grant-type:mfa' or 'urn:ietf:params:oauth:grant-type:device_code'."
    )


def test_a_grant_s_required_fields_are_checked_before_its_handler_runs() -> None:
    registry = GrantRegistry(DeviceCodeGrant())
    with pytest.raises(OAuthError) as refused:
        registry.handler_for({"grant_type": DeviceCodeGrant.grant_type, "device_code": ""})
    assert refused.value.code == "invalid_request"
    assert refused.value.detail == f"device_code is required for grant_type={DeviceCodeGrant.grant_type}."


def test_two_grants_cannot_give_one_form_field_two_lengths() -> None:
    class Clashing(DeviceCodeGrant):
        grant_type = "clashing"
        fields = (FormField("username", max_length=10),)

    with pytest.raises(ValueError, match="username"):
        GrantRegistry(*GRANTS.handlers.values(), Clashing())


async def test_the_token_request_body_documents_each_registered_grant(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/auth/token"]["post"]["requestBody"]
    titles = [b["title"] for b in body["content"][FORM]["schema"]["oneOf"]]
    assert titles == [handler.title for handler in GRANTS.handlers.values()]
    password = branch({"requestBody": body}, "Password grant")
    assert password["required"] == ["grant_type", "username", "password"]
    assert set(password["properties"]) == {"grant_type", "username", "password", "device_token"}
    assert "Client authentication: none" in password["description"]


_FIELD_VALUES = st.one_of(
    st.text(max_size=600),
    st.text(alphabet="öΩ\u2028x", min_size=500, max_size=530),  # characters, not bytes, are counted
    st.builds(lambda size: "r" * size, st.sampled_from([511, 512, 513, 1023, 1024, 1025])),
    st.just(UploadFile(io.BytesIO(b"x"), filename="x")),
)
_FIELD_NAMES = st.sampled_from([field.name for field in GRANTS.fields] + ["unknown", "Scope", ""])


@settings(max_examples=500, deadline=None, database=None)
@given(st.dictionaries(_FIELD_NAMES, _FIELD_VALUES, max_size=8))
def test_the_form_read_without_pydantic_is_the_models_reading(given_fields: dict[str, object]) -> None:
    """`read_form` skips pydantic where every field is a string within its length: it must then give
    exactly what the model would (every field, in order, None where absent, unknown names left out), and
    leave to the model every form the model refuses."""
    try:
        expected: dict[str, object] | None = GRANTS._form_model.model_validate(given_fields).__dict__
    except ValidationError:
        expected = None
    values = GRANTS._within_bounds(given_fields)
    assert values == expected
    if values is not None and expected is not None:
        assert list(values) == list(expected)
